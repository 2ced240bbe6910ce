/* A shim interest added to a set while a waiter sleeps on it with none, in a namespace with no
 * epoll set yet (the first case of the program): the waiter is woken by what it reports, from
 * another process sharing the set and from another thread; and on a set that another process
 * first nests in an outer one, then gives its first interest. */
#include "common.h"
#include <pthread.h>
#include <sys/epoll.h>

static int ep, p[2];

static void add_and_write(void)
{
	usleep(100000);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 7 };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) || write(p[1], "x", 1) != 1)
		die("add and write");
}

static void *thread_main(void *arg)
{
	(void)arg;
	add_and_write();
	return NULL;
}

static void show_wait(const char *what)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct epoll_event out = { 0, { 0 } };
	int n = epoll_wait(ep, &out, 1, 5000);
	printf("  %s: %d [data=%llu events=0x%x] %s\n", what, n, (unsigned long long)out.data.u64, out.events,
	       ms_since(&t0) < 2500 ? "before the timeout" : "at the timeout");
}

int main(void)
{
	setup();
	CASE("first_set_shared_with_a_child");
	io_pipe(p);
	ep = epoll_create1(0);
	pid_t pid = io_fork();
	if (pid == 0) {
		add_and_write();
		_exit(0);
	}
	show_wait("woken by the child's interest");
	show_status_io("child", io_reap(pid));
	close(ep);
	closep(p);

	CASE("first_set_of_a_thread");
	io_pipe(p);
	ep = epoll_create1(0);
	pthread_t t;
	if (pthread_create(&t, NULL, thread_main, NULL))
		die("pthread_create");
	show_wait("woken by the thread's interest");
	pthread_join(t, NULL);
	close(ep);
	closep(p);

	CASE("inner_set_nested_then_given_an_interest_by_a_child");
	io_pipe(p);
	ep = epoll_create1(0);
	int outer = epoll_create1(0);
	pid = io_fork();
	if (pid == 0) {
		usleep(50000);
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 8 };
		if (epoll_ctl(outer, EPOLL_CTL_ADD, ep, &ev))
			die("nest");
		add_and_write();
		_exit(0);
	}
	show_wait("woken by the child's interest in the inner set");
	show_status_io("child", io_reap(pid));
	close(outer);
	close(ep);
	closep(p);
	return 0;
}
