/* AF_UNIX stream connections with clients SIGKILLed at random moments: before, during and
 * after connect, mid-write, before the server accepted them.
 *
 * Usage: socket_stress CLIENTS SEED
 *
 * Each client connects to one listener, sends a header (its id) and then a stream of bytes
 * only it would send (byte i is (id * 31 + i) & 0xff), in chunks of random sizes, and exits 0
 * after closing. The server accepts and reads each connection to its end. What must hold:
 * every client that exited 0 delivered all of its bytes, exactly; a killed one delivered a
 * prefix of its stream (what it wrote before dying, never anything else); no connection is
 * seen twice; and nobody hangs. Prints "ok CLIENTS killed K delivered BYTES" and exits 0, or
 * says what went wrong and exits 1. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 256
#define MAX_LEN (200 * 1024)

static struct sockaddr_un addr;

static uint32_t rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(*s >> 33);
}

static long stream_len(int id, unsigned seed)
{
	uint64_t s = (uint64_t)seed * 1000003 + (uint64_t)id;
	return rnd(&s) % MAX_LEN;
}

static void client(int id, unsigned seed)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
		_exit(2);
	uint32_t hdr[2] = { 0x5eed5eed, (uint32_t)id };
	if (write(fd, hdr, sizeof hdr) != sizeof hdr)
		_exit(3);
	long len = stream_len(id, seed), done = 0;
	uint64_t s = (uint64_t)id * 7919 + seed;
	static unsigned char buf[65536];
	while (done < len) {
		long n = 1 + rnd(&s) % 20000;
		if (n > len - done)
			n = len - done;
		for (long i = 0; i < n; i++)
			buf[i] = (unsigned char)(id * 31 + done + i);
		long w = write(fd, buf, n);
		if (w <= 0)
			_exit(4);
		done += w;
	}
	if (close(fd) < 0)
		_exit(5);
	_exit(0);
}

struct seen {
	long got;
	int valid;
	int count;
};

/* Reads every connection the listener gets until `done` is closed and no connection waits. */
static int server(int l, int done, int out)
{
	static struct seen seen[MAX_CLIENTS];
	static unsigned char buf[65536];
	for (;;) {
		struct pollfd p[2] = { { l, POLLIN, 0 }, { done, POLLIN, 0 } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		int c = accept(l, NULL, NULL);
		if (c < 0) {
			if (errno == EAGAIN && p[1].revents)
				break;
			continue;
		}
		uint32_t hdr[2];
		long n = 0, k;
		while (n < (long)sizeof hdr && (k = read(c, (char *)hdr + n, sizeof hdr - n)) > 0)
			n += k;
		if (n < (long)sizeof hdr) { /* killed before its header was whole */
			close(c);
			continue;
		}
		if (hdr[0] != 0x5eed5eed || hdr[1] >= MAX_CLIENTS) {
			dprintf(2, "bad header %#x %u\n", hdr[0], hdr[1]);
			return 1;
		}
		struct seen *s = &seen[hdr[1]];
		s->count++;
		s->valid = 1;
		while ((k = read(c, buf, sizeof buf)) > 0) {
			for (long i = 0; i < k; i++)
				if (buf[i] != (unsigned char)(hdr[1] * 31 + s->got + i))
					s->valid = 0;
			s->got += k;
		}
		if (k < 0 && errno != ECONNRESET) {
			dprintf(2, "read: %s\n", strerror(errno));
			return 1;
		}
		close(c);
	}
	if (write(out, seen, sizeof seen) != sizeof seen)
		return 1;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	int clients = atoi(argv[1]);
	unsigned seed = (unsigned)atoi(argv[2]);
	if (clients < 1 || clients > MAX_CLIENTS)
		return 2;
	alarm(120);
	addr.sun_family = AF_UNIX;
	snprintf(addr.sun_path, sizeof addr.sun_path, "stress-%d.sock", getpid());
	unlink(addr.sun_path);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&addr, sizeof addr) || listen(l, 16)) {
		perror("listener");
		return 1;
	}
	int done[2], res[2];
	if (pipe(done) || pipe(res))
		return 1;
	pid_t srv = fork();
	if (srv == 0) {
		close(done[1]);
		close(res[0]);
		_exit(server(l, done[0], res[1]));
	}
	close(done[0]);
	close(res[1]);
	close(l);

	pid_t pids[MAX_CLIENTS];
	int killed[MAX_CLIENTS] = { 0 }, exited_ok[MAX_CLIENTS] = { 0 };
	uint64_t s = seed;
	for (int i = 0; i < clients; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			client(i, seed);
		/* Every other client dies at a random moment of its life. */
		if (i % 2 == 0) {
			struct timespec ts = { 0, (long)(rnd(&s) % 3000) * 1000 };
			nanosleep(&ts, NULL);
			kill(pids[i], SIGKILL);
		}
	}
	int nkilled = 0;
	for (int i = 0; i < clients; i++) {
		int st;
		if (waitpid(pids[i], &st, 0) != pids[i])
			return 1;
		killed[i] = WIFSIGNALED(st);
		exited_ok[i] = WIFEXITED(st) && WEXITSTATUS(st) == 0;
		nkilled += killed[i];
		if (!killed[i] && !exited_ok[i]) {
			printf("client %d failed: status %#x\n", i, st);
			return 1;
		}
	}
	close(done[1]);
	static struct seen seen[MAX_CLIENTS];
	long n = 0, k;
	while (n < (long)sizeof seen && (k = read(res[0], (char *)seen + n, sizeof seen - n)) > 0)
		n += k;
	int st;
	if (waitpid(srv, &st, 0) != srv || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || n != sizeof seen) {
		printf("server failed: status %#x\n", st);
		return 1;
	}
	long total = 0;
	for (int i = 0; i < clients; i++) {
		long len = stream_len(i, seed);
		struct seen *e = &seen[i];
		total += e->got;
		if (e->count > 1 || !(e->count == 0 || e->valid) || e->got > len) {
			printf("client %d: seen %d times, %ld of %ld bytes, valid %d\n", i, e->count, e->got, len,
			       e->valid);
			return 1;
		}
		if (exited_ok[i] && (e->count != 1 || e->got != len)) {
			printf("client %d exited 0 but delivered %ld of %ld bytes (seen %d times)\n", i, e->got, len,
			       e->count);
			return 1;
		}
	}
	unlink(addr.sun_path);
	printf("ok %d killed %d delivered %ld\n", clients, nkilled, total);
	return 0;
}
