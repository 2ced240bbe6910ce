/* More epoll interests than the shim's tables hold: 200 pipes and 200 socketpairs in one set
 * (a set holds 128 shim fds), and 1100 sets with one pipe each (the namespace holds 1024 sets
 * with shim fds). The kernel takes them all; so must the shim, giving what does not fit to the
 * kernel. Every interest must report, and every byte arrive, as on the kernel.
 * kernel-pipes: allowed
 * kernel-sockets: allowed */
#include "common.h"
#include <sys/epoll.h>
#include <sys/socket.h>

#define N 200
#define SETS 1100

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Waits once; prints how many events and their data, sorted. */
static void show_ready(const char *what, int ep)
{
	struct epoll_event ev[N * 2];
	uint64_t data[N * 2];
	int n = epoll_wait(ep, ev, N * 2, 1000);
	for (int i = 0; i < n; i++)
		data[i] = ev[i].data.u64;
	qsort(data, n > 0 ? n : 0, sizeof data[0], cmp_u64);
	printf("  %s: %d ready:", what, n);
	for (int i = 0; i < n; i++)
		printf(" %llu", (unsigned long long)data[i]);
	printf("\n");
}

static void one_set(int kind)
{
	int ep = epoll_create1(0), fds[N][2], added = 0;
	for (int i = 0; i < N; i++) {
		if (kind ? socketpair(AF_UNIX, SOCK_STREAM, 0, fds[i]) : pipe(fds[i]))
			die("pipe");
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = i };
		added += epoll_ctl(ep, EPOLL_CTL_ADD, fds[i][0], &ev) == 0;
	}
	printf("  added %d of %d\n", added, N);
	show_ready("nothing written", ep);
	int picks[] = { 0, 5, 127, 128, 150, 199 };
	for (unsigned k = 0; k < sizeof picks / sizeof picks[0]; k++)
		if (write(fds[picks[k]][1], "abc", 3) != 3)
			die("write");
	show_ready("six written", ep);
	int got = 0;
	char buf[8];
	for (unsigned k = 0; k < sizeof picks / sizeof picks[0]; k++)
		got += read(fds[picks[k]][0], buf, sizeof buf) == 3 && !memcmp(buf, "abc", 3);
	printf("  read back whole: %d\n", got);
	show_ready("all read", ep);
	for (int i = 0; i < N; i++) {
		close(fds[i][0]);
		close(fds[i][1]);
	}
	close(ep);
}

int main(void)
{
	setup();

	CASE("pipes_beyond_one_set");
	one_set(0);

	CASE("sockets_beyond_one_set");
	one_set(1);

	CASE("sets_beyond_the_namespace");
	static int eps[SETS], p[SETS][2];
	int added = 0, ready = 0, whole = 0;
	for (int i = 0; i < SETS; i++) {
		eps[i] = epoll_create1(0);
		if (eps[i] < 0 || pipe(p[i]))
			die("epoll_create1");
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = i };
		added += epoll_ctl(eps[i], EPOLL_CTL_ADD, p[i][0], &ev) == 0;
	}
	for (int i = 0; i < SETS; i++)
		if (write(p[i][1], "x", 1) != 1)
			die("write");
	for (int i = 0; i < SETS; i++) {
		struct epoll_event ev;
		char c;
		ready += epoll_wait(eps[i], &ev, 1, 1000) == 1 && ev.data.u64 == (uint64_t)i;
		whole += read(p[i][0], &c, 1) == 1 && c == 'x';
	}
	printf("  added %d, ready %d, read %d of %d\n", added, ready, whole, SETS);
	for (int i = 0; i < SETS; i++) {
		close(eps[i]);
		close(p[i][0]);
		close(p[i][1]);
	}
	return 0;
}
