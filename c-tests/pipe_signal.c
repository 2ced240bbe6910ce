/* Signals and pipes: blocking read/write interrupted by SIGALRM with and
 * without SA_RESTART, partial writes, SIGPIPE ignored/handled/default/
 * blocked. The interrupting signal comes from a helper process once the
 * parent is asleep in the call; EINTR cases resend until acknowledged, so
 * the outcome does not depend on timing. */
#include "common.h"

static volatile int g_alrm, g_pipes, g_notify = -1, g_rfd = -1, g_wfd = -1;
static volatile int g_pipe_code, g_pipe_pid;

static void on_alrm(int sig)
{
	(void)sig;
	int e = errno;
	g_alrm++;
	if (g_notify >= 0 && write(g_notify, "n", 1) != 1)
		_exit(3);
	errno = e;
}

/* Handler for the self-pipe cases: supplies data or space itself. */
static void on_alrm_feed(int sig)
{
	static char page[4096];
	(void)sig;
	int e = errno;
	g_alrm++;
	if (g_wfd >= 0 && write(g_wfd, "H", 1) != 1)
		_exit(3);
	if (g_rfd >= 0 && read(g_rfd, page, sizeof page) != sizeof page)
		_exit(3);
	errno = e;
}

static void on_pipe(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	g_pipes++;
	g_pipe_code = si->si_code;
	g_pipe_pid = si->si_pid;
}

static void sigpipe_info(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_pipe;
	sa.sa_flags = SA_SIGINFO;
	if (sigaction(SIGPIPE, &sa, NULL))
		die("sigaction");
}

static void show_pipes(void)
{
	printf("  SIGPIPE handled %d time(s)", g_pipes);
	if (g_pipes)
		printf(", si_code=%s si_pid=%s", g_pipe_code == SI_USER ? "SI_USER" : "other",
		       pidrel(g_pipe_pid));
	printf("\n");
	g_pipes = 0;
}

/* A safety net that cannot use SIGALRM: SIGTERM after 10 s. */
static void watchdog(void)
{
	timer_t t;
	struct sigevent ev;
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGTERM;
	struct itimerspec its = { { 0, 0 }, { 10, 0 } };
	if (timer_create(CLOCK_MONOTONIC, &ev, &t) || timer_settime(t, 0, &its, NULL))
		die("timer");
}

int main(void)
{
	setup();
	watchdog();
	int p[2], n[2], ack[2];
	pid_t pid, parent = getpid();
	char buf[256];
	static char big[100000], huge[(1 << 20) + 4096];
	long r;

	CASE("sig_read_restart");
	io_handler(SIGALRM, on_alrm, SA_RESTART);
	io_pipe(p);
	io_pipe(n);
	g_notify = n[1];
	g_alrm = 0;
	if ((pid = io_fork()) == 0) {
		alarm(5);
		io_close(p[0]);
		io_wait_sleeping(parent);
		kill(parent, SIGALRM);
		io_wait(n[0]);
		io_wait_sleeping(parent);
		_exit(write(p[1], "late data", 9) != 9);
	}
	io_close(p[1]);
	r = IOSHOW(read(p[0], buf, sizeof buf));
	printf("  data: \"%.*s\", handler ran %d time(s)\n", (int)(r > 0 ? r : 0), buf, g_alrm);
	show_status_io("helper", io_reap(pid));
	io_close(p[0]);
	closep(n);
	g_notify = -1;

	CASE("sig_read_eintr");
	io_handler(SIGALRM, on_alrm, 0);
	io_pipe(p);
	io_pipe(ack);
	g_alrm = 0;
	if ((pid = io_fork()) == 0) {
		alarm(5);
		io_close(p[0]);
		io_close(ack[1]);
		io_signal_until(parent, SIGALRM, ack[0]);
		_exit(write(p[1], "after", 5) != 5);
	}
	io_close(p[1]);
	io_close(ack[0]);
	IOSHOW(read(p[0], buf, sizeof buf));
	io_post(ack[1]);
	show_status_io("helper", io_reap(pid));
	printf("  handler ran: %s\n", g_alrm ? "yes" : "no");
	r = IOSHOW(read(p[0], buf, sizeof buf));
	printf("  data: \"%.*s\"\n", (int)(r > 0 ? r : 0), buf);
	io_close(p[0]);
	io_close(ack[1]);

	CASE("sig_write_full_restart");
	io_handler(SIGALRM, on_alrm, SA_RESTART);
	io_pipe(p);
	io_pipe(n);
	g_notify = n[1];
	g_alrm = 0;
	printf("  filled: %ld\n", io_fill(p[1], 4096));
	if ((pid = io_fork()) == 0) {
		alarm(5);
		io_close(p[1]);
		io_wait_sleeping(parent);
		kill(parent, SIGALRM);
		io_wait(n[0]);
		io_wait_sleeping(parent);
		_exit(read(p[0], big, 4096) != 4096);
	}
	IOSHOW(write(p[1], big, 100));
	printf("  handler ran %d time(s)\n", g_alrm);
	show_status_io("helper", io_reap(pid));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	closep(p);
	closep(n);
	g_notify = -1;

	CASE("sig_write_full_eintr");
	io_handler(SIGALRM, on_alrm, 0);
	io_pipe(p);
	io_pipe(ack);
	g_alrm = 0;
	printf("  filled: %ld\n", io_fill(p[1], 1));
	if ((pid = io_fork()) == 0) {
		alarm(5);
		io_close(ack[1]);
		io_signal_until(parent, SIGALRM, ack[0]);
		_exit(0);
	}
	io_close(ack[0]);
	IOSHOW(write(p[1], big, 100));
	io_post(ack[1]);
	show_status_io("helper", io_reap(pid));
	printf("  handler ran: %s, FIONREAD = %d\n", g_alrm ? "yes" : "no", io_nread(p[0]));
	closep(p);
	io_close(ack[1]);

	for (int restart = 0; restart < 2; restart++) {
		CASE(restart ? "sig_write_partial_restart" : "sig_write_partial_eintr");
		/* Once some data is in, a signal ends the write with the count,
		 * SA_RESTART or not. */
		io_handler(SIGALRM, on_alrm, restart ? SA_RESTART : 0);
		io_pipe(p);
		g_alrm = 0;
		if ((pid = io_fork()) == 0) {
			struct timespec ts = { 0, 1000000 };
			alarm(5);
			while (io_nread(p[0]) < 65536)
				nanosleep(&ts, NULL);
			kill(parent, SIGALRM);
			_exit(0);
		}
		IOSHOW(write(p[1], big, 65536 + 4096));
		printf("  handler ran %d time(s)\n", g_alrm);
		show_status_io("helper", io_reap(pid));
		printf("  FIONREAD = %d\n", io_nread(p[0]));
		closep(p);
	}

	CASE("sig_write_partial_signal_while_copying");
	/* The signal comes as soon as the first bytes are in, while the
	 * write is still copying into a 1 MiB pipe: the kernel looks for it
	 * only once the pipe is full, and returns what fitted. */
	io_handler(SIGALRM, on_alrm, 0);
	io_pipe(p);
	IOSHOW(fcntl(p[1], F_SETPIPE_SZ, 1 << 20));
	g_alrm = 0;
	if ((pid = io_fork()) == 0) {
		alarm(5);
		while (io_nread(p[0]) == 0)
			;
		kill(parent, SIGALRM);
		_exit(0);
	}
	IOSHOW(write(p[1], huge, sizeof huge));
	printf("  handler ran %d time(s)\n", g_alrm);
	show_status_io("helper", io_reap(pid));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	closep(p);

	CASE("sig_read_restart_handler_feeds");
	/* The handler writes to the pipe the read sleeps on: the restarted
	 * read finds its byte. */
	io_handler(SIGALRM, on_alrm_feed, SA_RESTART);
	io_pipe(p);
	g_wfd = p[1];
	g_alrm = 0;
	if ((pid = io_fork()) == 0) {
		alarm(5);
		io_wait_sleeping(parent);
		kill(parent, SIGALRM);
		_exit(0);
	}
	r = IOSHOW(read(p[0], buf, sizeof buf));
	printf("  data: \"%.*s\", handler ran %d time(s)\n", (int)(r > 0 ? r : 0), buf, g_alrm);
	show_status_io("helper", io_reap(pid));
	g_wfd = -1;
	closep(p);

	CASE("sig_write_restart_handler_drains");
	io_handler(SIGALRM, on_alrm_feed, SA_RESTART);
	io_pipe(p);
	printf("  filled: %ld\n", io_fill(p[1], 4096));
	g_rfd = p[0];
	g_alrm = 0;
	if ((pid = io_fork()) == 0) {
		alarm(5);
		io_wait_sleeping(parent);
		kill(parent, SIGALRM);
		_exit(0);
	}
	IOSHOW(write(p[1], big, 4096));
	printf("  handler ran %d time(s)\n", g_alrm);
	g_rfd = -1;
	show_status_io("helper", io_reap(pid));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	closep(p);
	signal(SIGALRM, SIG_DFL);

	CASE("sig_sigpipe_default_kills");
	io_pipe(p);
	io_close(p[0]);
	if ((pid = io_fork()) == 0) {
		signal(SIGPIPE, SIG_DFL);
		r = write(p[1], "x", 1);
		printf("  still alive after write = %ld\n", r);
		_exit(0);
	}
	show_status_io("child", io_reap(pid));
	io_close(p[1]);

	CASE("sig_sigpipe_ignored");
	signal(SIGPIPE, SIG_IGN);
	io_pipe(p);
	io_close(p[0]);
	IOSHOW(write(p[1], "x", 1));
	{
		sigset_t pend;
		sigpending(&pend);
		printf("  SIGPIPE pending: %s\n", sigismember(&pend, SIGPIPE) ? "yes" : "no");
	}
	io_close(p[1]);

	CASE("sig_sigpipe_handler");
	sigpipe_info();
	io_pipe(p);
	io_close(p[0]);
	IOSHOW(write(p[1], "x", 1));
	show_pipes();
	{
		struct iovec iov[2] = { { "ab", 2 }, { "cd", 2 } };
		IOSHOW(writev(p[1], iov, 2));
		show_pipes();
	}
	io_close(p[1]);

	CASE("sig_sigpipe_blocked");
	{
		sigset_t set, old, pend;
		sigemptyset(&set);
		sigaddset(&set, SIGPIPE);
		sigprocmask(SIG_BLOCK, &set, &old);
		io_pipe(p);
		io_close(p[0]);
		IOSHOW(write(p[1], "x", 1));
		IOSHOW(write(p[1], "y", 1));
		sigpending(&pend);
		printf("  SIGPIPE pending: %s\n", sigismember(&pend, SIGPIPE) ? "yes" : "no");
		show_pipes();
		sigprocmask(SIG_SETMASK, &old, NULL);
		printf("  after unblocking:\n");
		show_pipes();
		io_close(p[1]);
	}

	CASE("sig_sigpipe_in_child_after_reader_exits");
	io_pipe(p);
	if ((pid = io_fork()) == 0) {
		signal(SIGPIPE, SIG_DFL);
		io_close(p[0]);
		r = write(p[1], big, 4096);
		printf("  child: first write = %ld\n", r);
		r = write(p[1], big, sizeof big);
		printf("  child: still alive after write = %ld\n", r);
		_exit(0);
	}
	io_close(p[1]);
	{
		/* Let the child fill the pipe, then go away as the reader. */
		struct timespec ts = { 0, 1000000 };
		while (io_nread(p[0]) < 65536)
			nanosleep(&ts, NULL);
	}
	io_close(p[0]);
	show_status_io("child", io_reap(pid));

	CASE("sig_blocked_write_reader_exits");
	/* The reader leaves while the writer sleeps on a full pipe after
	 * writing some: the partial count comes back and SIGPIPE is sent too. */
	io_pipe(p);
	if ((pid = io_fork()) == 0) {
		struct timespec ts = { 0, 1000000 };
		alarm(5);
		io_close(p[1]);
		while (io_nread(p[0]) < 65536)
			nanosleep(&ts, NULL);
		_exit(0);
	}
	io_close(p[0]);
	IOSHOW(write(p[1], big, sizeof big));
	show_pipes();
	IOSHOW(write(p[1], big, 1));
	show_pipes();
	show_status_io("helper", io_reap(pid));
	io_close(p[1]);

	CASE("sig_blocked_write_nothing_written_reader_exits");
	io_pipe(p);
	printf("  filled: %ld\n", io_fill(p[1], 4096));
	if ((pid = io_fork()) == 0) {
		alarm(5);
		io_close(p[1]);
		io_wait_sleeping(parent);
		_exit(0);
	}
	io_close(p[0]);
	IOSHOW(write(p[1], big, 10));
	show_pipes();
	show_status_io("helper", io_reap(pid));
	io_close(p[1]);

	CASE("sig_blocked_read_writer_exits");
	io_pipe(p);
	if ((pid = io_fork()) == 0) {
		alarm(5);
		io_close(p[0]);
		io_wait_sleeping(parent);
		_exit(0);
	}
	io_close(p[1]);
	IOSHOW(read(p[0], buf, sizeof buf));
	show_status_io("helper", io_reap(pid));
	io_close(p[0]);
	return 0;
}
