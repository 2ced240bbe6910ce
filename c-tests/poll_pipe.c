/* poll and ppoll on pipes: revents in every pipe state, timeouts, EINTR
 * (poll is never restarted), waiters woken by another process, mixed fd
 * sets, POLLNVAL, and ppoll's signal mask. */
#include "common.h"

#define ALL (POLLIN | POLLPRI | POLLOUT | POLLRDNORM | POLLRDBAND | POLLWRNORM | POLLWRBAND | POLLRDHUP)

static volatile int g_usr1;

static void on_usr1(int sig)
{
	(void)sig;
	g_usr1++;
}

static void show_both(int p[2])
{
	show_poll1("read end", p[0], ALL);
	show_poll1("write end", p[1], ALL);
}

/* poll(fds, n, timeout) and print each revents. */
static void show_set(const char *const *names, struct pollfd *fds, int nfds, int timeout)
{
	errno = 0;
	int r = poll(fds, nfds, timeout);
	if (r < 0)
		printf("  poll = -1 %s\n", errname_io(errno));
	else
		printf("  poll = %d\n", r);
	for (int i = 0; i < nfds; i++)
		printf("    %s: revents=%s\n", names[i], pollbits(fds[i].revents));
}

static int pending(int sig)
{
	sigset_t s;
	sigpending(&s);
	return sigismember(&s, sig);
}

int main(void)
{
	setup();
	alarm(10);
	signal(SIGPIPE, SIG_IGN);
	int p[2];
	pid_t pid, parent = getpid();
	char buf[8192];
	static char big[65536];
	struct timespec t0;
	long ms;

	CASE("poll_empty_pipe");
	io_pipe(p);
	show_both(p);

	CASE("poll_data_queued");
	IOSHOW(write(p[1], "abc", 3));
	show_both(p);

	CASE("poll_writer_gone");
	io_close(p[1]);
	show_poll1("read end, data queued", p[0], ALL);
	IOSHOW(read(p[0], buf, sizeof buf));
	show_poll1("read end, drained", p[0], ALL);
	show_poll1("read end, events=0", p[0], 0);
	io_close(p[0]);

	CASE("poll_reader_gone");
	io_pipe(p);
	io_close(p[0]);
	show_poll1("write end", p[1], ALL);
	show_poll1("write end, events=0", p[1], 0);
	show_poll1("write end, POLLIN only", p[1], POLLIN);
	io_close(p[1]);
	io_pipe(p);
	io_fill(p[1], 4096);
	io_close(p[0]);
	show_poll1("write end of a full pipe", p[1], ALL);
	io_close(p[1]);

	CASE("poll_full_pipe");
	io_pipe(p);
	printf("  filled: %ld\n", io_fill(p[1], 1));
	show_both(p);
	IOSHOW(read(p[0], buf, 1));
	show_poll1("write end, 1 byte read", p[1], POLLOUT);
	IOSHOW(read(p[0], buf, 4095));
	show_poll1("write end, first page read", p[1], POLLOUT);
	closep(p);

	CASE("poll_writable_counts_pages");
	/* Sixteen pages in use: not writable, however few bytes they hold. */
	io_pipe(p);
	for (int i = 0; i < 15; i++)
		if (write(p[1], big, 4096) != 4096)
			die("write");
	show_poll1("write end, 15 pages", p[1], POLLOUT);
	IOSHOW(write(p[1], big, 1));
	show_poll1("write end, 15 pages + 1 byte", p[1], POLLOUT);
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	closep(p);
	io_pipe(p);
	IOSHOW(fcntl(p[1], F_SETPIPE_SZ, 4096));
	IOSHOW(write(p[1], "x", 1));
	show_poll1("write end, 1-page pipe with 1 byte", p[1], POLLOUT);
	closep(p);

	CASE("poll_timeout_zero");
	io_pipe(p);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	{
		struct pollfd f = { p[0], POLLIN, 0 };
		IOSHOW(poll(&f, 1, 0));
	}
	printf("  returned within 1 s: %s\n", ms_since(&t0) < 1000 ? "yes" : "no");

	CASE("poll_short_timeout");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	{
		struct pollfd f = { p[0], POLLIN, 0 };
		IOSHOW(poll(&f, 1, 50));
		ms = ms_since(&t0);
		printf("  waited at least 50 ms: %s, revents=%s\n", ms >= 50 ? "yes" : "no",
		       pollbits(f.revents));
	}
	closep(p);

	CASE("poll_eintr_even_with_sa_restart");
	io_handler(SIGUSR1, on_usr1, SA_RESTART);
	io_pipe(p);
	{
		int ack[2];
		io_pipe(ack);
		g_usr1 = 0;
		if ((pid = io_fork()) == 0) {
			io_close(ack[1]);
			io_signal_until(parent, SIGUSR1, ack[0]);
			_exit(0);
		}
		io_close(ack[0]);
		struct pollfd f = { p[0], POLLIN, 0 };
		IOSHOW(poll(&f, 1, -1));
		io_post(ack[1]);
		show_status_io("helper", io_reap(pid));
		printf("  handler ran: %s, revents=%s\n", g_usr1 ? "yes" : "no", pollbits(f.revents));
		io_close(ack[1]);
	}
	closep(p);

	CASE("poll_woken_by_writer_process");
	io_pipe(p);
	if ((pid = io_fork()) == 0) {
		io_wait_sleeping(parent);
		_exit(write(p[1], "wake", 4) != 4);
	}
	{
		struct pollfd f = { p[0], POLLIN, 0 };
		IOSHOW(poll(&f, 1, 5000));
		printf("  revents=%s\n", pollbits(f.revents));
	}
	show_status_io("writer", io_reap(pid));
	closep(p);

	CASE("poll_woken_by_last_writer_exit");
	io_pipe(p);
	if ((pid = io_fork()) == 0) {
		io_wait_sleeping(parent);
		_exit(0);
	}
	io_close(p[1]);
	{
		struct pollfd f = { p[0], POLLIN, 0 };
		IOSHOW(poll(&f, 1, 5000));
		printf("  revents=%s\n", pollbits(f.revents));
	}
	show_status_io("writer", io_reap(pid));
	io_close(p[0]);

	CASE("poll_woken_by_reader_exit");
	io_pipe(p);
	io_fill(p[1], 4096);
	if ((pid = io_fork()) == 0) {
		io_wait_sleeping(parent);
		_exit(0);
	}
	io_close(p[0]);
	{
		struct pollfd f = { p[1], POLLOUT, 0 };
		IOSHOW(poll(&f, 1, 5000));
		printf("  revents=%s\n", pollbits(f.revents));
	}
	show_status_io("reader", io_reap(pid));
	io_close(p[1]);

	CASE("poll_woken_when_space_frees");
	io_pipe(p);
	io_fill(p[1], 4096);
	if ((pid = io_fork()) == 0) {
		io_wait_sleeping(parent);
		_exit(read(p[0], buf, 4096) != 4096);
	}
	{
		struct pollfd f = { p[1], POLLOUT, 0 };
		IOSHOW(poll(&f, 1, 5000));
		printf("  revents=%s\n", pollbits(f.revents));
	}
	show_status_io("reader", io_reap(pid));
	closep(p);

	CASE("poll_mixed_fd_set");
	io_pipe(p);
	IOSHOW(write(p[1], "x", 1));
	{
		int q[2];
		io_pipe(q);
		int file = open("poll_file", O_CREAT | O_RDWR | O_TRUNC, 0600);
		int null = open("/dev/null", O_RDWR);
		int rdonly = open("/dev/null", O_RDONLY);
		if (file < 0 || null < 0 || rdonly < 0)
			die("open");
		unlink("poll_file");
		static const char *const names[] = { "pipe read end (data)", "pipe write end",
			"empty pipe read end", "regular file", "/dev/null O_RDWR",
			"/dev/null O_RDONLY", "fd -1" };
		struct pollfd f[7] = {
			{ p[0], ALL, 0 }, { p[1], ALL, 0 }, { q[0], ALL, 0 }, { file, ALL, 0 },
			{ null, POLLIN | POLLOUT, 0 }, { rdonly, POLLOUT, 0 }, { -1, ALL, 7 },
		};
		show_set(names, f, 7, 0);
		for (int i = 0; i < 7; i++)
			f[i].events = POLLIN;
		f[0].fd = q[0];
		f[1].fd = q[0];
		show_set(names, f, 3, 0);
		closep(q);
		io_close(file);
		io_close(null);
		io_close(rdonly);
	}
	closep(p);

	CASE("poll_nval_and_ignored");
	io_pipe(p);
	{
		int closed = dup(p[0]);
		io_close(closed);
		static const char *const names[] = { "closed fd", "fd -1", "fd -5", "read end",
						     "same read end again" };
		struct pollfd f[5] = { { closed, POLLIN, 0 }, { -1, POLLIN, 9 }, { -5, POLLIN, 9 },
				       { p[0], POLLIN, 9 }, { p[0], POLLIN | POLLOUT, 0 } };
		show_set(names, f, 5, 0);
		IOSHOW(write(p[1], "x", 1));
		show_set(names, f, 5, 0);
		f[0].events = 0;
		show_set(names, f, 1, 0);
	}
	closep(p);

	CASE("poll_bad_arguments");
	{
		struct pollfd *volatile nul = NULL;
		static struct pollfd many[65];
		struct rlimit rl, small;
		for (int i = 0; i < 65; i++)
			many[i].fd = -1;
		IOSHOW(poll(nul, 1, 0));
		IOSHOW(poll(nul, 0, 0));
		IOSHOW(poll((struct pollfd *)io_edge(sizeof(struct pollfd)), 2, 0));
		getrlimit(RLIMIT_NOFILE, &rl);
		small.rlim_cur = 64;
		small.rlim_max = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &small))
			die("setrlimit");
		IOSHOW(poll(many, 64, 0));
		IOSHOW(poll(many, 65, 0));
		if (setrlimit(RLIMIT_NOFILE, &rl))
			die("setrlimit");
	}

	CASE("ppoll_mask_unblocks_pending_signal");
	io_handler(SIGUSR1, on_usr1, 0);
	io_pipe(p);
	{
		sigset_t block, empty, old;
		sigemptyset(&block);
		sigaddset(&block, SIGUSR1);
		sigemptyset(&empty);
		sigprocmask(SIG_BLOCK, &block, &old);
		g_usr1 = 0;
		raise(SIGUSR1);
		printf("  pending before: %s\n", pending(SIGUSR1) ? "yes" : "no");
		struct pollfd f = { p[0], POLLIN, 0 };
		IOSHOW(ppoll(&f, 1, NULL, &empty));
		printf("  handler ran %d time(s), pending after: %s\n", g_usr1,
		       pending(SIGUSR1) ? "yes" : "no");
		struct timespec zero = { 0, 0 };
		raise(SIGUSR1);
		IOSHOW(ppoll(&f, 1, &zero, &empty));
		printf("  with timeout 0: handler ran %d time(s), pending after: %s\n", g_usr1,
		       pending(SIGUSR1) ? "yes" : "no");

		CASE("ppoll_ready_fd_leaves_signal_pending");
		/* Success restores the old mask before the signal is delivered. */
		IOSHOW(write(p[1], "x", 1));
		g_usr1 = 0;
		raise(SIGUSR1);
		IOSHOW(ppoll(&f, 1, NULL, &empty));
		printf("  revents=%s, handler ran %d time(s), pending after: %s\n",
		       pollbits(f.revents), g_usr1, pending(SIGUSR1) ? "yes" : "no");
		sigprocmask(SIG_SETMASK, &old, NULL);
		printf("  after unblocking: handler ran %d time(s)\n", g_usr1);
		IOSHOW(ppoll(&f, 1, NULL, NULL));
	}
	closep(p);

	CASE("ppoll_timeouts");
	io_pipe(p);
	{
		struct pollfd f = { p[0], POLLIN, 0 };
		struct timespec ts = { 0, 0 };
		IOSHOW(ppoll(&f, 1, &ts, NULL));
		ts.tv_nsec = 30 * 1000 * 1000;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		IOSHOW(ppoll(&f, 1, &ts, NULL));
		printf("  waited at least 30 ms: %s; timeout after: %s\n",
		       ms_since(&t0) >= 30 ? "yes" : "no",
		       ts.tv_sec == 0 && ts.tv_nsec == 30 * 1000 * 1000 ? "unchanged" : "changed");
		ts.tv_nsec = 1000 * 1000 * 1000;
		IOSHOW(ppoll(&f, 1, &ts, NULL));
		ts.tv_sec = -1;
		ts.tv_nsec = 0;
		IOSHOW(ppoll(&f, 1, &ts, NULL));
		ts.tv_sec = 0;
		ts.tv_nsec = -1;
		IOSHOW(ppoll(&f, 1, &ts, NULL));
		IOSHOW(write(p[1], "x", 1));
		ts.tv_sec = 5;
		ts.tv_nsec = 0;
		IOSHOW(ppoll(&f, 1, &ts, NULL));
		printf("  timeout after an immediate answer: %s\n",
		       ts.tv_sec == 5 && ts.tv_nsec == 0 ? "unchanged" : "changed");
	}
	closep(p);
	return 0;
}
