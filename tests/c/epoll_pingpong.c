/* An edge-triggered ping-pong over an AF_UNIX stream connection: a client and a server
 * process, each waiting in epoll_wait with EPOLLET on its end, exchange ROUNDS 20-byte
 * messages. A lost wake-up leaves both asleep with a message queued between them.
 *
 * Usage: epoll_pingpong ROUNDS MODE EVENTS JITTER_NS
 *
 * MODE: "pair" (a socketpair, added after the fork), "named" (the client adds its socket to
 * its set before connecting, as nginx does, the server its accepted one). EVENTS: "in"
 * (EPOLLIN|EPOLLET) or "inout" (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET, which makes every look at
 * a listed interest report). JITTER_NS: each side spins a random 0..JITTER ns between finding
 * its queue empty and waiting, so that the other's message arrives at every point of the
 * waiter's look at its set. Prints "ok ROUNDS" and exits 0, or says which side
 * stalled (10 s without an event) and exits 1. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG 20

static long rounds, jitter;
static unsigned events;

static unsigned long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000ull + t.tv_nsec;
}

static void fail(const char *who, const char *what, long round)
{
	fprintf(stderr, "%s, round %ld: %s (%s)\n", who, round, what, strerror(errno));
	exit(1);
}

/* The next message: read until EAGAIN, waiting (edge-triggered) while nothing came. */
static void receive(const char *who, int ep, int fd, long round)
{
	char buf[MSG * 2];
	long got = 0;
	for (;;) {
		ssize_t n = read(fd, buf + got, sizeof buf - got);
		if (n > 0) {
			got += n;
			continue;
		}
		/* The server's last message can come with its end of file. */
		if (n == 0 && got == MSG)
			return;
		if (n == 0)
			fail(who, "end of file", round);
		if (errno != EAGAIN)
			fail(who, "read", round);
		if (got == MSG)
			return;
		if (got)
			fail(who, "a short message", round);
		if (jitter) {
			unsigned long long t0 = now_ns(), d = (unsigned long long)(random() % jitter);
			while (now_ns() - t0 < d)
				;
		}
		struct epoll_event e;
		int k = epoll_wait(ep, &e, 1, 10000);
		if (k == 0)
			fail(who, "10 s without an event: a lost wake-up", round);
		if (k < 0 && errno != EINTR)
			fail(who, "epoll_wait", round);
	}
}

static void play(const char *who, int ep, int fd, int first)
{
	static const char msg[MSG + 1] = "0123456789abcdefghij";
	if (fcntl(fd, F_SETFL, O_NONBLOCK))
		fail(who, "fcntl", 0);
	srandom(getpid());
	for (long i = 0; i < rounds; i++) {
		if (first && write(fd, msg, MSG) != MSG)
			fail(who, "write", i);
		receive(who, ep, fd, i);
		if (!first && write(fd, msg, MSG) != MSG)
			fail(who, "write", i);
	}
}

static int watch(int fd)
{
	int ep = epoll_create1(0);
	struct epoll_event e = { .events = events, .data.fd = fd };
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e))
		fail("setup", "epoll", 0);
	return ep;
}

int main(int argc, char **argv)
{
	if (argc != 5)
		return 2;
	rounds = atol(argv[1]);
	int named = !strcmp(argv[2], "named");
	events = EPOLLIN | EPOLLET | (strcmp(argv[3], "inout") ? 0 : EPOLLOUT | EPOLLRDHUP);
	jitter = atol(argv[4]);
	int sv[2], cep = -1, l = -1;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (named) {
		snprintf(a.sun_path, sizeof a.sun_path, "pingpong-%d.sock", getpid());
		unlink(a.sun_path);
		l = socket(AF_UNIX, SOCK_STREAM, 0);
		if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1))
			fail("setup", "listen", 0);
		sv[0] = socket(AF_UNIX, SOCK_STREAM, 0);
		cep = watch(sv[0]);
	} else if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) {
		fail("setup", "socketpair", 0);
	}
	pid_t pid = fork();
	if (pid < 0)
		fail("setup", "fork", 0);
	if (pid == 0) {
		int fd = sv[1];
		if (named) {
			close(sv[0]);
			fd = accept(l, NULL, NULL);
			if (fd < 0)
				fail("server", "accept", 0);
			close(l);
		} else {
			close(sv[0]);
		}
		play("server", watch(fd), fd, 0);
		_exit(0);
	}
	if (named) {
		close(l);
		if (connect(sv[0], (struct sockaddr *)&a, sizeof a))
			fail("client", "connect", 0);
		unlink(a.sun_path);
	} else {
		close(sv[1]);
		cep = watch(sv[0]);
	}
	play("client", cep, sv[0], 1);
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("client", "the server failed", rounds);
	printf("ok %ld\n", rounds);
	return 0;
}
