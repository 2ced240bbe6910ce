/* epoll over pipes, alone and mixed with kernel fds (an eventfd, a socketpair): level- and
 * edge-triggered, EPOLLONESHOT, EPOLLEXCLUSIVE, EPOLLRDHUP, HUP and ERR, MOD and DEL, the
 * errno paths of epoll_ctl and epoll_wait, timeouts, signal masks, EINTR, closed fds leaving
 * the set, an epoll fd shared across fork and inherited across exec. Under the shim no pipe
 * may be handed back: no byte may move through a kernel pipe. */
#include "common.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>

static int cmp_ev(const void *a, const void *b)
{
	const struct epoll_event *x = a, *y = b;
	return (x->data.u64 > y->data.u64) - (x->data.u64 < y->data.u64);
}

/* epoll_wait, printed: the count (or errno) and each event, sorted by data. */
static int show_wait(const char *what, int ep, int max, int timeout)
{
	struct epoll_event ev[16];
	errno = 0;
	int n = epoll_wait(ep, ev, max, timeout);
	if (n < 0) {
		printf("  %s: -1 %s\n", what, errname(errno));
		return n;
	}
	qsort(ev, n, sizeof ev[0], cmp_ev);
	printf("  %s: %d", what, n);
	for (int i = 0; i < n; i++)
		printf(" [data=%llu events=%#x]", (unsigned long long)ev[i].data.u64, ev[i].events);
	printf("\n");
	return n;
}

static int add(int ep, int fd, unsigned events, unsigned long long data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };
	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int mod(int ep, int fd, unsigned events, unsigned long long data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };
	return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

static void xpipe(int p[2])
{
	if (pipe(p))
		die("pipe");
}

static void put(int fd, const char *s)
{
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		die("write");
}

static void drain(int fd)
{
	char buf[65536];
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	while (read(fd, buf, sizeof buf) > 0)
		;
	fcntl(fd, F_SETFL, fl);
}

static volatile sig_atomic_t handled;
static void on_signal(int sig)
{
	(void)sig;
	handled++;
}

/* exec'd image: wait on the inherited epoll fd, then read the pipe it watches. */
static int exec_child(char **argv)
{
	int ep = atoi(argv[2]), rd = atoi(argv[3]);
	show_wait("exec'd: wait", ep, 4, 1000);
	char buf[16] = "";
	ssize_t n = read(rd, buf, sizeof buf);
	printf("  exec'd: read %zd \"%.*s\"\n", n, (int)(n > 0 ? n : 0), buf);
	show_wait("exec'd: wait after read", ep, 4, 0);
	return 0;
}

int main(int argc, char **argv)
{
	int p[2], q[2], ep;
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc == 4 && !strcmp(argv[1], "exec-child"))
		return exec_child(argv);
	setup();
	alarm(20);
	signal(SIGPIPE, SIG_IGN);

	CASE("lt_read_end");
	xpipe(p);
	ep = epoll_create1(EPOLL_CLOEXEC);
	SHOW(add(ep, p[0], EPOLLIN, 7));
	show_wait("empty", ep, 4, 0);
	put(p[1], "abc");
	show_wait("after write", ep, 4, 0);
	show_wait("again (level)", ep, 4, 0);
	drain(p[0]);
	show_wait("drained", ep, 4, 0);
	close(ep); close(p[0]); close(p[1]);

	CASE("lt_write_end_full_and_freed");
	xpipe(p);
	ep = epoll_create1(0);
	SHOW(add(ep, p[1], EPOLLOUT, 1));
	show_wait("empty pipe", ep, 4, 0);
	fcntl(p[1], F_SETFL, O_NONBLOCK);
	{
		char big[4096] = { 0 };
		long total = 0, n;
		while ((n = write(p[1], big, sizeof big)) > 0)
			total += n;
		printf("  filled %ld bytes\n", total);
		show_wait("full", ep, 4, 0);
		SHOW(read(p[0], big, 100));
		show_wait("100 bytes read (no slot free)", ep, 4, 0);
		SHOW(read(p[0], big, 4096 - 100));
		show_wait("a slot free", ep, 4, 0);
	}
	close(ep); close(p[0]); close(p[1]);

	CASE("lt_both_ends_in_one_set");
	xpipe(p);
	ep = epoll_create1(0);
	SHOW(add(ep, p[0], EPOLLIN | EPOLLOUT, 0));
	SHOW(add(ep, p[1], EPOLLIN | EPOLLOUT, 1));
	show_wait("empty", ep, 4, 0);
	put(p[1], "x");
	show_wait("one byte", ep, 4, 0);
	close(ep); close(p[0]); close(p[1]);

	CASE("et_fires_again_after_each_write");
	xpipe(p);
	ep = epoll_create1(0);
	SHOW(add(ep, p[0], EPOLLIN | EPOLLET, 3));
	show_wait("empty", ep, 4, 0);
	put(p[1], "a");
	show_wait("first write", ep, 4, 0);
	show_wait("no new write", ep, 4, 0);
	put(p[1], "b");
	show_wait("second write, still readable", ep, 4, 0);
	show_wait("nothing new", ep, 4, 0);
	{
		char c;
		SHOW(read(p[0], &c, 1));
	}
	show_wait("after a read", ep, 4, 0);
	close(ep); close(p[0]); close(p[1]);

	CASE("et_ready_when_added");
	xpipe(p);
	put(p[1], "queued");
	ep = epoll_create1(0);
	SHOW(add(ep, p[0], EPOLLIN | EPOLLET, 4));
	show_wait("added readable", ep, 4, 0);
	show_wait("once only", ep, 4, 0);
	SHOW(mod(ep, p[0], EPOLLIN | EPOLLET, 5));
	show_wait("after MOD (polled again)", ep, 4, 0);
	close(ep); close(p[0]); close(p[1]);

	CASE("et_write_end");
	xpipe(p);
	ep = epoll_create1(0);
	SHOW(add(ep, p[1], EPOLLOUT | EPOLLET, 6));
	show_wait("writable when added", ep, 4, 0);
	show_wait("once only", ep, 4, 0);
	put(p[1], "x");
	show_wait("a write (no wake-up of writers)", ep, 4, 0);
	fcntl(p[1], F_SETFL, O_NONBLOCK);
	{
		char big[4096] = { 0 };
		while (write(p[1], big, sizeof big) > 0)
			;
		show_wait("full", ep, 4, 0);
		SHOW(read(p[0], big, sizeof big));
		show_wait("read from a full pipe", ep, 4, 0);
		SHOW(read(p[0], big, sizeof big));
		show_wait("read from a non-full pipe", ep, 4, 0);
	}
	close(ep); close(p[0]); close(p[1]);

	CASE("et_in_and_out_on_write_end");
	xpipe(p);
	ep = epoll_create1(0);
	SHOW(add(ep, p[1], EPOLLIN | EPOLLOUT | EPOLLET, 8));
	show_wait("added", ep, 4, 0);
	put(p[1], "x");
	show_wait("a write", ep, 4, 0);
	close(ep); close(p[0]); close(p[1]);

	CASE("oneshot");
	xpipe(p);
	ep = epoll_create1(0);
	SHOW(add(ep, p[0], EPOLLIN | EPOLLONESHOT, 9));
	put(p[1], "a");
	show_wait("first", ep, 4, 0);
	put(p[1], "b");
	show_wait("disabled", ep, 4, 0);
	close(p[1]);
	show_wait("disabled, writer gone", ep, 4, 0);
	SHOW(mod(ep, p[0], EPOLLIN | EPOLLONESHOT, 10));
	show_wait("re-armed", ep, 4, 0);
	show_wait("disabled again", ep, 4, 0);
	SHOW(add(ep, p[0], EPOLLIN, 11));
	close(ep); close(p[0]);

	CASE("oneshot_et_hup");
	xpipe(p);
	ep = epoll_create1(0);
	SHOW(add(ep, p[0], EPOLLIN | EPOLLET | EPOLLONESHOT, 12));
	show_wait("empty", ep, 4, 0);
	close(p[1]);
	show_wait("writer closed", ep, 4, 0);
	show_wait("disabled", ep, 4, 0);
	close(ep); close(p[0]);

	CASE("hup_and_rdhup");
	xpipe(p);
	ep = epoll_create1(0);
	SHOW(add(ep, p[0], EPOLLIN | EPOLLRDHUP, 13));
	put(p[1], "left");
	close(p[1]);
	show_wait("data, writer gone", ep, 4, 0);
	drain(p[0]);
	show_wait("drained, writer gone", ep, 4, 0);
	show_wait("still (level)", ep, 4, 0);
	close(ep); close(p[0]);

	CASE("hup_edge_triggered");
	xpipe(p);
	ep = epoll_create1(0);
	SHOW(add(ep, p[0], EPOLLIN | EPOLLET, 14));
	put(p[1], "x");
	show_wait("write", ep, 4, 0);
	close(p[1]);
	show_wait("writer closed with data left", ep, 4, 0);
	show_wait("once", ep, 4, 0);
	close(ep); close(p[0]);

	CASE("err_on_write_end");
	xpipe(p);
	ep = epoll_create1(0);
	SHOW(add(ep, p[1], EPOLLOUT, 15));
	close(p[0]);
	show_wait("reader gone", ep, 4, 0);
	SHOW(write(p[1], "x", 1));
	close(ep); close(p[1]);

	CASE("no_events_asked");
	xpipe(p);
	ep = epoll_create1(0);
	SHOW(add(ep, p[0], 0, 16));
	put(p[1], "x");
	show_wait("readable, nothing asked", ep, 4, 0);
	close(p[1]);
	show_wait("writer gone: HUP always", ep, 4, 0);
	close(ep); close(p[0]);

	CASE("mod_and_del");
	xpipe(p);
	ep = epoll_create1(0);
	SHOW(add(ep, p[0], EPOLLIN, 17));
	put(p[1], "x");
	show_wait("in", ep, 4, 0);
	SHOW(mod(ep, p[0], EPOLLOUT, 18));
	show_wait("out on a read end", ep, 4, 0);
	SHOW(mod(ep, p[0], EPOLLIN, 19));
	show_wait("in, new data", ep, 4, 0);
	SHOW(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));
	show_wait("deleted", ep, 4, 0);
	SHOW(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));
	SHOW(mod(ep, p[0], EPOLLIN, 20));
	SHOW(add(ep, p[0], EPOLLIN, 21));
	show_wait("added again", ep, 4, 0);
	close(ep); close(p[0]); close(p[1]);

	CASE("ctl_errors");
	xpipe(p);
	ep = epoll_create1(0);
	{
		int f = open("regular", O_RDWR | O_CREAT | O_TRUNC, 0600);
		int closed = dup(p[0]);
		close(closed);
		SHOW(add(ep, p[0], EPOLLIN, 1));
		SHOW(add(ep, p[0], EPOLLIN, 1));
		SHOW(mod(ep, p[1], EPOLLOUT, 1));
		SHOW(add(ep, closed, EPOLLIN, 1));
		SHOW(add(closed, p[0], EPOLLIN, 1));
		SHOW(add(p[1], p[0], EPOLLIN, 1));
		SHOW(add(f, p[0], EPOLLIN, 1));
		SHOW(add(ep, f, EPOLLIN, 1));
		SHOW(add(ep, ep, EPOLLIN, 1));
		SHOW(epoll_ctl(ep, 99, p[1], &(struct epoll_event){ 0 }));
		SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, p[1], NULL));
		SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, p[1], (void *)8));
		SHOW(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], NULL));
		SHOW(epoll_ctl(ep, EPOLL_CTL_DEL, p[1], NULL));
		SHOW(add(ep, p[1], EPOLLOUT | EPOLLEXCLUSIVE | EPOLLONESHOT, 1));
		SHOW(add(ep, p[1], EPOLLOUT | EPOLLEXCLUSIVE | EPOLLRDHUP, 1));
		SHOW(add(ep, p[1], EPOLLOUT | EPOLLEXCLUSIVE, 2));
		SHOW(mod(ep, p[1], EPOLLOUT, 3));
		SHOW(mod(ep, p[0], EPOLLIN | EPOLLEXCLUSIVE, 3));
		show_wait("after the errors", ep, 4, 0);
		close(f);
	}
	close(ep); close(p[0]); close(p[1]);

	CASE("eloop_and_nesting_without_pipes");
	{
		int a = epoll_create1(0), b = epoll_create1(0);
		SHOW(add(a, b, EPOLLIN, 1));
		SHOW(add(b, a, EPOLLIN, 1));
		close(a); close(b);
	}

	CASE("create_errors");
	SHOW(epoll_create(0));
	SHOW(epoll_create(-1));
	SHOW(epoll_create1(12345));
	ep = epoll_create(1);
	printf("  epoll_create(1) %s\n", ep >= 0 ? "ok" : "failed");
	close(ep);

	CASE("wait_errors");
	xpipe(p);
	ep = epoll_create1(0);
	SHOW(add(ep, p[0], EPOLLIN, 22));
	put(p[1], "x");
	{
		struct epoll_event ev[2];
		SHOW(syscall(SYS_epoll_wait, ep, ev, 0, 0));
		SHOW(syscall(SYS_epoll_wait, ep, ev, -1, 0));
		SHOW(syscall(SYS_epoll_wait, ep, ev, INT_MAX, 0));
		SHOW(syscall(SYS_epoll_wait, ep, NULL, 1, 0));
		SHOW(syscall(SYS_epoll_wait, ep, (void *)8, 1, 0));
		SHOW(syscall(SYS_epoll_wait, ep, (void *)-4096L, 1, 0));
		SHOW(epoll_wait(p[0], ev, 1, 0));
		SHOW(epoll_pwait(ep, ev, 1, 0, (sigset_t *)8));
		SHOW(syscall(SYS_epoll_pwait, ep, ev, 1, 0, NULL, 7));
		sigset_t s;
		sigemptyset(&s);
		SHOW(syscall(SYS_epoll_pwait, ep, ev, 1, 0, &s, 7));
		struct timespec bad = { 0, 1000000000 }, neg = { -1, 0 };
		SHOW(epoll_pwait2(ep, ev, 1, &bad, NULL));
		SHOW(epoll_pwait2(ep, ev, 1, &neg, NULL));
		SHOW(epoll_pwait2(ep, ev, 1, (void *)8, NULL));
		SHOW(epoll_wait(ep, ev, 2, 0));
	}
	close(ep); close(p[0]); close(p[1]);

	CASE("timeouts");
	xpipe(p);
	ep = epoll_create1(0);
	SHOW(add(ep, p[0], EPOLLIN, 23));
	{
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		show_wait("50 ms, nothing", ep, 4, 50);
		long el = ms_since(&t0);
		printf("  waited %s\n", el >= 49 && el < 1000 ? "about 50 ms" : "WRONG");
		struct timespec ts = { 0, 30 * 1000 * 1000 };
		struct epoll_event ev[2];
		clock_gettime(CLOCK_MONOTONIC, &t0);
		SHOW(epoll_pwait2(ep, ev, 2, &ts, NULL));
		el = ms_since(&t0);
		printf("  pwait2 waited %s\n", el >= 29 && el < 1000 ? "about 30 ms" : "WRONG");
		struct timespec zero = { 0, 0 };
		SHOW(epoll_pwait2(ep, ev, 2, &zero, NULL));
		put(p[1], "x");
		SHOW(epoll_pwait2(ep, ev, 2, NULL, NULL));
		printf("  data %llu\n", (unsigned long long)ev[0].data.u64);
	}
	close(ep); close(p[0]); close(p[1]);

	CASE("wakeup_by_a_writer_process");
	xpipe(p);
	ep = epoll_create1(0);
	SHOW(add(ep, p[0], EPOLLIN, 24));
	{
		/* Timed from before the fork: the write comes 50 ms later at the earliest, however
		 * late the parent runs after the fork. */
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		pid_t pid = fork();
		if (pid == 0) {
			usleep(50000);
			put(p[1], "late");
			_exit(0);
		}
		show_wait("blocking", ep, 4, 5000);
		long el = ms_since(&t0);
		printf("  woke %s\n", el >= 40 && el < 2000 ? "after the write" : "WRONG");
		wait_child(pid);
	}
	close(ep); close(p[0]); close(p[1]);

	CASE("eintr_never_restarted");
	xpipe(p);
	ep = epoll_create1(0);
	SHOW(add(ep, p[0], EPOLLIN, 25));
	{
		struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
		sigemptyset(&sa.sa_mask);
		sigaction(SIGALRM, &sa, NULL);
		struct itimerval it = { { 0, 0 }, { 0, 50000 } };
		handled = 0;
		setitimer(ITIMER_REAL, &it, NULL);
		show_wait("SA_RESTART handler", ep, 4, 5000);
		printf("  handled %d\n", (int)handled);
		setitimer(ITIMER_REAL, &it, NULL);
		struct epoll_event ev[1];
		struct timespec ts = { 5, 0 };
		SHOW(epoll_pwait2(ep, ev, 1, &ts, NULL));
		printf("  handled %d\n", (int)handled);
		signal(SIGALRM, SIG_DFL);
		alarm(20);
	}
	close(ep); close(p[0]); close(p[1]);

	CASE("pwait_signal_mask");
	xpipe(p);
	ep = epoll_create1(0);
	SHOW(add(ep, p[0], EPOLLIN, 26));
	{
		struct sigaction sa = { .sa_handler = on_signal };
		sigemptyset(&sa.sa_mask);
		sigaction(SIGUSR1, &sa, NULL);
		sigset_t block, none, all;
		sigemptyset(&block);
		sigaddset(&block, SIGUSR1);
		sigprocmask(SIG_BLOCK, &block, NULL);
		sigemptyset(&none);
		sigfillset(&all);
		handled = 0;
		pid_t parent = getpid(), pid = fork();
		if (pid == 0) {
			usleep(50000);
			kill(parent, SIGUSR1);
			_exit(0);
		}
		struct epoll_event ev[1];
		/* SIGUSR1 stays blocked: the wait times out and the signal stays pending. */
		SHOW(epoll_pwait(ep, ev, 1, 200, &all));
		printf("  handled %d\n", (int)handled);
		/* The mask of the call lets it in. */
		SHOW(epoll_pwait(ep, ev, 1, 2000, &none));
		printf("  handled %d\n", (int)handled);
		wait_child(pid);
		put(p[1], "x");
		SHOW(epoll_pwait(ep, ev, 1, 2000, &all));
		sigprocmask(SIG_UNBLOCK, &block, NULL);
	}
	close(ep); close(p[0]); close(p[1]);

	CASE("mixed_eventfd_and_socketpair");
	xpipe(p);
	ep = epoll_create1(0);
	{
		int efd = eventfd(0, 0), sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			die("socketpair");
		SHOW(add(ep, p[0], EPOLLIN, 100));
		SHOW(add(ep, efd, EPOLLIN, 200));
		SHOW(add(ep, sv[0], EPOLLIN | EPOLLET, 300));
		show_wait("nothing", ep, 8, 0);
		uint64_t one = 1;
		SHOW(write(efd, &one, 8));
		show_wait("eventfd", ep, 8, 0);
		put(p[1], "x");
		SHOW(write(sv[1], "s", 1));
		show_wait("all three", ep, 8, 0);
		show_wait("level ones again", ep, 8, 0);
		SHOW(read(efd, &one, 8));
		drain(p[0]);
		pid_t pid = fork();
		if (pid == 0) {
			usleep(30000);
			put(p[1], "y");
			usleep(30000);
			if (write(sv[1], "t", 1) != 1)
				_exit(1);
			_exit(0);
		}
		show_wait("blocking: the pipe", ep, 8, 5000);
		drain(p[0]);
		show_wait("blocking: the socket", ep, 8, 5000);
		wait_child(pid);
		show_wait("maxevents 1", ep, 1, 0);
		close(efd); close(sv[0]); close(sv[1]);
	}
	close(ep); close(p[0]); close(p[1]);

	CASE("maxevents_rotates_level_triggered");
	ep = epoll_create1(0);
	{
		int a[2], b[2], c[2];
		xpipe(a); xpipe(b); xpipe(c);
		SHOW(add(ep, a[0], EPOLLIN, 1));
		SHOW(add(ep, b[0], EPOLLIN, 2));
		SHOW(add(ep, c[0], EPOLLIN, 3));
		put(a[1], "a"); put(b[1], "b"); put(c[1], "c");
		unsigned seen = 0;
		for (int i = 0; i < 3; i++) {
			struct epoll_event ev[1];
			if (epoll_wait(ep, ev, 1, 0) == 1)
				seen |= 1u << ev[0].data.u64;
		}
		printf("  three calls of one event saw %#x\n", seen);
		show_wait("all", ep, 8, 0);
		close(a[0]); close(a[1]); close(b[0]); close(b[1]); close(c[0]); close(c[1]);
	}
	close(ep);

	CASE("closed_fd_leaves_the_set_with_its_last_reference");
	xpipe(p);
	ep = epoll_create1(0);
	{
		SHOW(add(ep, p[0], EPOLLIN, 27));
		int d = dup(p[0]);
		close(p[0]);
		put(p[1], "x");
		show_wait("closed but dup'd", ep, 4, 0);
		close(d);
		SHOW(write(p[1], "y", 1));
		show_wait("last reference closed", ep, 4, 0);
		xpipe(q);
		SHOW(add(ep, q[0], EPOLLIN, 28));
		put(q[1], "z");
		show_wait("a new pipe", ep, 4, 0);
		close(q[0]); close(q[1]);
		show_wait("all closed", ep, 4, 0);
	}
	close(ep); close(p[1]);

	CASE("exclusive");
	xpipe(p);
	{
		int e1 = epoll_create1(0), e2 = epoll_create1(0);
		SHOW(add(e1, p[0], EPOLLIN | EPOLLEXCLUSIVE, 31));
		SHOW(add(e2, p[0], EPOLLIN | EPOLLEXCLUSIVE, 32));
		pid_t pid = fork();
		if (pid == 0) {
			usleep(50000);
			put(p[1], "x");
			_exit(0);
		}
		struct epoll_event ev[1];
		int n = epoll_wait(e1, ev, 1, 5000);
		printf("  e1: %d data=%llu\n", n, n > 0 ? (unsigned long long)ev[0].data.u64 : 0);
		/* "One or more" are woken: the kernel wakes e1 only, the shim both. */
		printf("  e2 %s\n", epoll_wait(e2, ev, 1, 0) >= 0 ? "answers" : "fails");
		SHOW(mod(e1, p[0], EPOLLIN, 33));
		wait_child(pid);
		close(e1); close(e2);
	}
	close(p[0]); close(p[1]);

	CASE("fork_shares_the_interests");
	xpipe(p);
	xpipe(q);
	ep = epoll_create1(0);
	{
		int sync[2];
		xpipe(sync);
		pid_t pid = fork();
		if (pid == 0) {
			SHOW(add(ep, q[0], EPOLLIN, 41));
			put(sync[1], "k");
			_exit(0);
		}
		char c;
		if (read(sync[0], &c, 1) != 1)
			die("sync");
		wait_child(pid);
		put(q[1], "q");
		show_wait("parent sees the child's interest", ep, 4, 0);
		SHOW(add(ep, q[0], EPOLLIN, 42));
		SHOW(epoll_ctl(ep, EPOLL_CTL_DEL, q[0], NULL));
		show_wait("deleted by the parent", ep, 4, 0);
		close(sync[0]); close(sync[1]);
	}
	close(ep); close(p[0]); close(p[1]); close(q[0]); close(q[1]);

	CASE("a_pipe_added_while_a_waiter_sleeps");
	xpipe(p);
	xpipe(q);
	{
		int other = epoll_create1(0);
		SHOW(add(other, q[0], EPOLLIN, 1));
		ep = epoll_create1(0);
		pid_t pid = fork();
		if (pid == 0) {
			usleep(50000);
			SHOW(add(ep, p[0], EPOLLIN, 91));
			put(p[1], "x");
			_exit(0);
		}
		show_wait("woken by an interest added meanwhile", ep, 4, 5000);
		wait_child(pid);
		close(other);
	}
	close(ep); close(p[0]); close(p[1]); close(q[0]); close(q[1]);

	CASE("cross_process_et_wakeup");
	xpipe(p);
	ep = epoll_create1(0);
	SHOW(add(ep, p[0], EPOLLIN | EPOLLET, 51));
	put(p[1], "first");
	show_wait("first write", ep, 4, 0);
	{
		pid_t waiter = fork();
		if (waiter == 0) {
			show_wait("child waiter: already readable, woken by a third process", ep, 4, 5000);
			show_wait("child waiter: nothing new", ep, 4, 0);
			_exit(0);
		}
		pid_t writer = fork();
		if (writer == 0) {
			usleep(80000);
			put(p[1], "second");
			_exit(0);
		}
		wait_child(writer);
		wait_child(waiter);
		show_wait("parent: consumed by the child", ep, 4, 0);
	}
	close(ep); close(p[0]); close(p[1]);

	CASE("exec_inherits_the_set");
	xpipe(p);
	ep = epoll_create1(0);
	SHOW(add(ep, p[0], EPOLLIN, 61));
	put(p[1], "exec");
	{
		pid_t pid = fork();
		if (pid == 0) {
			char a[16], b[16];
			snprintf(a, sizeof a, "%d", ep);
			snprintf(b, sizeof b, "%d", p[0]);
			execl("/proc/self/exe", "epoll_pipe", "exec-child", a, b, (char *)NULL);
			_exit(127);
		}
		wait_child(pid);
		show_wait("parent after the exec'd child read", ep, 4, 0);
	}
	close(ep); close(p[0]); close(p[1]);

	CASE("instances_closed_with_their_pipes_open_are_forgotten");
	xpipe(p);
	{
		/* More epoll instances than the shim keeps at once, each gone when closed. */
		int ok = 0;
		for (int i = 0; i < 1500; i++) {
			ep = epoll_create1(0);
			if (add(ep, p[0], EPOLLIN, i) == 0 && add(ep, p[1], EPOLLOUT, i) == 0)
				ok++;
			close(ep);
		}
		printf("  added to %d of 1500\n", ok);
		ep = epoll_create1(0);
		SHOW(add(ep, p[1], EPOLLOUT, 81));
		show_wait("the last one works", ep, 4, 0);
		close(ep);
	}
	close(p[0]); close(p[1]);

	CASE("queued_data_and_a_child_writer");
	xpipe(p);
	SHOW(write(p[1], "before", 6));
	ep = epoll_create1(EPOLL_CLOEXEC);
	SHOW(add(ep, p[0], EPOLLIN, 71));
	show_wait("queued before epoll", ep, 4, 1000);
	drain(p[0]);
	show_wait("drained", ep, 4, 0);
	{
		pid_t pid = fork();
		if (pid == 0) {
			if (write(p[1], "child", 5) != 5)
				_exit(1);
			_exit(0);
		}
		show_wait("after child write", ep, 4, 5000);
		drain(p[0]);
		wait_child(pid);
		close(p[1]);
		show_wait("after last writer", ep, 4, 1000);
	}
	close(ep); close(p[0]);
	return 0;
}
