/* An fd closed while another thread blocks in a read or write on it: the blocked call
 * holds the file as the kernel's fdget does, so the object stays open until it returns. A
 * later write completes a blocked read (pipes, FIFOs, stream and seqpacket socket pairs), a
 * later read lets a blocked write finish, and only once the call returned is the end gone
 * (EPIPE, end of file). The closing thread waits until the other one sleeps in the call
 * (its /proc state), so the close always comes during it. */
#include "common.h"
#include <pthread.h>
#include <sys/socket.h>
#include <sys/syscall.h>

struct blocked {
	int fd;
	int write; /* write `len` bytes instead of reading */
	size_t len;
	pid_t tid;
	long result;
	int err;
	char data[8];
};

/* The blocked call: preadv2 or pwritev2 at the current position (read or write to the
 * kernel and to the shim, on pipes, FIFOs and sockets alike), which `ipcshim diff` does not
 * compare: it compares each process's IPC calls in order, and two threads' calls on one
 * pipe or socket may be logged in either order (the blocked read returns, and is logged,
 * while the write that woke it is still returning). */
static void *blocked_call(void *arg)
{
	struct blocked *b = arg;
	static char big[65536];
	struct iovec io = { b->write ? big : b->data, b->write ? b->len : sizeof b->data };
	__atomic_store_n(&b->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_SEQ_CST);
	errno = 0;
	b->result = b->write ? pwritev2(b->fd, &io, 1, -1, 0) : preadv2(b->fd, &io, 1, -1, 0);
	b->err = errno;
	return NULL;
}

/* Waits until thread `tid` sleeps (state S), up to 5 s. */
static int wait_asleep(struct blocked *b)
{
	char path[64], buf[256];
	for (int i = 0; i < 5000; i++) {
		pid_t tid = __atomic_load_n(&b->tid, __ATOMIC_SEQ_CST);
		if (tid) {
			snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
			int fd = open(path, O_RDONLY);
			ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
			if (fd >= 0)
				close(fd);
			if (n > 0) {
				buf[n] = 0;
				char *p = strrchr(buf, ')');
				if (p && p[1] == ' ' && p[2] == 'S')
					return 1;
			}
		}
		usleep(1000);
	}
	printf("  (the thread never slept)\n");
	return 0;
}

static void show_blocked(struct blocked *b)
{
	if (b->result < 0)
		printf("  blocked call returned -1 %s\n", errname_io(b->err));
	else if (b->write)
		printf("  blocked call returned %ld\n", b->result);
	else
		printf("  blocked call returned %ld \"%.*s\"\n", b->result, (int)b->result, b->data);
}

/* Starts the blocked call on fd, waits until it sleeps, closes fd. */
static pthread_t block_then_close(struct blocked *b, int fd, int write, size_t len)
{
	memset(b, 0, sizeof *b);
	b->fd = fd;
	b->write = write;
	b->len = len;
	pthread_t t;
	if (pthread_create(&t, NULL, blocked_call, b))
		die("pthread_create");
	wait_asleep(b);
	IOSHOW(close(fd));
	return t;
}

static void read_side(const char *name, int rfd, int wfd)
{
	char what[64];
	snprintf(what, sizeof what, "%s_read_closed", name);
	CASE(what);
	struct blocked b;
	pthread_t t = block_then_close(&b, rfd, 0, 0);
	IOSHOW(write(wfd, "hello", 5));
	pthread_join(t, NULL);
	show_blocked(&b);
	/* Now the read end is gone. */
	IOSHOW(write(wfd, "again", 5));
	IOSHOW(close(wfd));
}

static void fill(int fd)
{
	static char junk[4096];
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	while (write(fd, junk, sizeof junk) > 0)
		;
	fcntl(fd, F_SETFL, fl);
}

static void write_side(const char *name, int rfd, int wfd)
{
	char what[64];
	snprintf(what, sizeof what, "%s_write_closed", name);
	CASE(what);
	fill(wfd);
	struct blocked b;
	pthread_t t = block_then_close(&b, wfd, 1, 4096);
	/* Reading makes room: the blocked write finishes. */
	static char buf[65536];
	long total = 0, n;
	while ((n = read(rfd, buf, sizeof buf)) > 0)
		total += n;
	pthread_join(t, NULL);
	show_blocked(&b);
	printf("  read until end of file: %s, last read = %ld\n", total > 4096 ? "data then EOF" : "short", n);
	IOSHOW(close(rfd));
}

int main(void)
{
	setup();
	signal(SIGPIPE, SIG_IGN);
	int p[2];

	io_pipe(p);
	read_side("pipe", p[0], p[1]);
	io_pipe(p);
	write_side("pipe", p[0], p[1]);

	if (mkfifo("fifo", 0600))
		die("mkfifo");
	int r = open("fifo", O_RDONLY | O_NONBLOCK);
	int w = open("fifo", O_WRONLY);
	if (r < 0 || w < 0)
		die("open fifo");
	fcntl(r, F_SETFL, O_RDONLY);
	read_side("fifo", r, w);
	r = open("fifo", O_RDONLY | O_NONBLOCK);
	w = open("fifo", O_WRONLY);
	if (r < 0 || w < 0)
		die("open fifo");
	fcntl(r, F_SETFL, O_RDONLY);
	write_side("fifo", r, w);
	unlink("fifo");

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		die("socketpair");
	read_side("stream", sv[0], sv[1]);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv))
		die("socketpair");
	read_side("seqpacket", sv[0], sv[1]);
	return 0;
}
