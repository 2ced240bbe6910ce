/* select and pselect on pipes: the three sets in every pipe state, EBADF,
 * Linux's remaining-timeout update, EINTR, a waiter woken by another
 * process, and pselect's signal mask. */
#include "common.h"

static volatile int g_usr1;

static void on_usr1(int sig)
{
	(void)sig;
	g_usr1++;
}

static int pending(int sig)
{
	sigset_t s;
	sigpending(&s);
	return sigismember(&s, sig);
}

/* select over fds[] in all three sets with timeout tv (NULL: none) and
 * print which sets each fd came back in. */
static int show_select(const char *const *names, const int *fds, int n, struct timeval *tv)
{
	fd_set r, w, x;
	int max = -1;
	FD_ZERO(&r);
	FD_ZERO(&w);
	FD_ZERO(&x);
	for (int i = 0; i < n; i++) {
		FD_SET(fds[i], &r);
		FD_SET(fds[i], &w);
		FD_SET(fds[i], &x);
		if (fds[i] > max)
			max = fds[i];
	}
	errno = 0;
	int ret = select(max + 1, &r, &w, &x, tv);
	if (ret < 0)
		printf("  select = -1 %s\n", errname_io(errno));
	else
		printf("  select = %d\n", ret);
	for (int i = 0; i < n; i++)
		printf("    %s: read=%d write=%d except=%d\n", names[i], FD_ISSET(fds[i], &r) != 0,
		       FD_ISSET(fds[i], &w) != 0, FD_ISSET(fds[i], &x) != 0);
	return ret;
}

static void select_pipe(int p[2])
{
	static const char *const names[] = { "read end", "write end" };
	struct timeval tv = { 0, 0 };
	show_select(names, p, 2, &tv);
}

int main(void)
{
	setup();
	alarm(10);
	signal(SIGPIPE, SIG_IGN);
	int p[2];
	pid_t pid, parent = getpid();
	char buf[256];
	struct timespec t0;
	struct timeval tv;
	fd_set rs;

	CASE("select_empty_pipe");
	io_pipe(p);
	select_pipe(p);

	CASE("select_data_queued");
	IOSHOW(write(p[1], "abc", 3));
	select_pipe(p);

	CASE("select_writer_gone");
	io_close(p[1]);
	{
		static const char *const names[] = { "read end, data queued" };
		tv.tv_sec = tv.tv_usec = 0;
		show_select(names, p, 1, &tv);
	}
	IOSHOW(read(p[0], buf, sizeof buf));
	{
		static const char *const names[] = { "read end, drained, EOF" };
		tv.tv_sec = tv.tv_usec = 0;
		show_select(names, p, 1, &tv);
	}
	io_close(p[0]);

	CASE("select_reader_gone");
	/* POLLERR counts as readable too: the write end shows in readfds. */
	io_pipe(p);
	io_close(p[0]);
	{
		static const char *const names[] = { "write end" };
		tv.tv_sec = tv.tv_usec = 0;
		show_select(names, p + 1, 1, &tv);
	}
	IOSHOW(read(p[1], buf, 1));
	io_close(p[1]);

	CASE("select_full_pipe");
	io_pipe(p);
	printf("  filled: %ld\n", io_fill(p[1], 4096));
	select_pipe(p);
	IOSHOW(read(p[0], buf, 100));
	select_pipe(p);
	closep(p);

	CASE("select_both_modes_one_fd");
	/* An O_RDWR reopen of a pipe is one fd in both sets: counted twice. */
	io_pipe(p);
	{
		char path[64];
		snprintf(path, sizeof path, "/proc/self/fd/%d", p[0]);
		int rw = open(path, O_RDWR);
		if (rw < 0)
			die("open");
		static const char *const names[] = { "O_RDWR fd" };
		tv.tv_sec = tv.tv_usec = 0;
		show_select(names, &rw, 1, &tv);
		IOSHOW(write(rw, "x", 1));
		tv.tv_sec = tv.tv_usec = 0;
		show_select(names, &rw, 1, &tv);
		io_close(rw);
	}
	closep(p);

	CASE("select_mixed_fds");
	io_pipe(p);
	{
		int file = open("select_file", O_CREAT | O_RDWR | O_TRUNC, 0600);
		int null = open("/dev/null", O_RDONLY);
		if (file < 0 || null < 0)
			die("open");
		unlink("select_file");
		int fds[4] = { p[0], p[1], file, null };
		static const char *const names[] = { "pipe read end", "pipe write end",
						     "regular file", "/dev/null O_RDONLY" };
		tv.tv_sec = tv.tv_usec = 0;
		show_select(names, fds, 4, &tv);
		io_close(file);
		io_close(null);
	}
	closep(p);

	CASE("select_ebadf");
	io_pipe(p);
	IOSHOW(write(p[1], "x", 1));
	{
		int closed = dup(p[0]);
		io_close(closed);
		fd_set r, w;
		FD_ZERO(&r);
		FD_ZERO(&w);
		FD_SET(p[0], &r);
		FD_SET(closed, &r);
		tv.tv_sec = tv.tv_usec = 0;
		IOSHOW(select(closed + 1, &r, NULL, NULL, &tv));
		printf("  sets left as passed: read end %d, closed fd %d\n", FD_ISSET(p[0], &r) != 0,
		       FD_ISSET(closed, &r) != 0);
		FD_ZERO(&r);
		FD_SET(closed, &w);
		IOSHOW(select(closed + 1, &r, &w, NULL, &tv));
		FD_ZERO(&w);
		FD_SET(closed, &r);
		FD_SET(p[0], &r);
		/* A closed fd at or above nfds is not looked at. */
		IOSHOW(select(p[0] + 1, &r, NULL, NULL, &tv));
		printf("  read end %d, closed fd %d\n", FD_ISSET(p[0], &r) != 0, FD_ISSET(closed, &r) != 0);
	}
	closep(p);

	CASE("select_bad_arguments");
	/* tv_usec of a whole second is carried into tv_sec, not refused. */
	io_pipe(p);
	IOSHOW(write(p[1], "x", 1));
	FD_ZERO(&rs);
	FD_SET(p[0], &rs);
	tv.tv_sec = 0;
	tv.tv_usec = 1000000;
	IOSHOW(select(p[0] + 1, &rs, NULL, NULL, &tv));
	printf("  time left: at most 1 s: %s, more than 0.5 s: %s\n",
	       tv.tv_sec == 0 || (tv.tv_sec == 1 && tv.tv_usec == 0) ? "yes" : "no",
	       tv.tv_sec == 1 || tv.tv_usec > 500000 ? "yes" : "no");
	tv.tv_sec = -1;
	tv.tv_usec = 0;
	IOSHOW(select(p[0] + 1, &rs, NULL, NULL, &tv));
	tv.tv_sec = 0;
	tv.tv_usec = -1;
	IOSHOW(select(p[0] + 1, &rs, NULL, NULL, &tv));
	tv.tv_sec = 0;
	tv.tv_usec = 0;
	{
		volatile int minus1 = -1;
		IOSHOW(select(minus1, &rs, NULL, NULL, &tv));
	}
	IOSHOW(select(p[0] + 1, (fd_set *)io_edge(0), NULL, NULL, &tv));
	IOSHOW(select(0, NULL, NULL, NULL, &tv));
	IOSHOW(read(p[0], buf, 1));

	CASE("select_timeout_expires");
	/* Linux writes the time left back: zero after a timeout. */
	FD_ZERO(&rs);
	FD_SET(p[0], &rs);
	tv.tv_sec = 0;
	tv.tv_usec = 50000;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	IOSHOW(select(p[0] + 1, &rs, NULL, NULL, &tv));
	printf("  waited at least 50 ms: %s; timeout after: %ld s %ld us; read end set: %d\n",
	       ms_since(&t0) >= 50 ? "yes" : "no", (long)tv.tv_sec, (long)tv.tv_usec,
	       FD_ISSET(p[0], &rs) != 0);
	FD_ZERO(&rs);
	tv.tv_sec = 0;
	tv.tv_usec = 20000;
	IOSHOW(select(0, NULL, NULL, NULL, &tv));
	printf("  timeout after: %ld s %ld us\n", (long)tv.tv_sec, (long)tv.tv_usec);

	CASE("select_timeout_remaining");
	IOSHOW(write(p[1], "x", 1));
	FD_ZERO(&rs);
	FD_SET(p[0], &rs);
	tv.tv_sec = 5;
	tv.tv_usec = 0;
	IOSHOW(select(p[0] + 1, &rs, NULL, NULL, &tv));
	printf("  time left: more than 4 s: %s, at most 5 s: %s\n", tv.tv_sec >= 4 ? "yes" : "no",
	       tv.tv_sec < 5 || (tv.tv_sec == 5 && tv.tv_usec == 0) ? "yes" : "no");
	FD_ZERO(&rs);
	FD_SET(p[0], &rs);
	IOSHOW(select(p[0] + 1, &rs, NULL, NULL, NULL));
	closep(p);

	CASE("select_eintr_even_with_sa_restart");
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
		FD_ZERO(&rs);
		FD_SET(p[0], &rs);
		tv.tv_sec = 8;
		tv.tv_usec = 0;
		IOSHOW(select(p[0] + 1, &rs, NULL, NULL, &tv));
		io_post(ack[1]);
		show_status_io("helper", io_reap(pid));
		printf("  handler ran: %s; set left as passed: %d; time left below 8 s: %s\n",
		       g_usr1 ? "yes" : "no", FD_ISSET(p[0], &rs) != 0,
		       tv.tv_sec < 8 ? "yes" : "no");
		io_close(ack[1]);
	}
	closep(p);

	CASE("select_woken_by_writer_process");
	io_pipe(p);
	if ((pid = io_fork()) == 0) {
		io_wait_sleeping(parent);
		_exit(write(p[1], "wake", 4) != 4);
	}
	FD_ZERO(&rs);
	FD_SET(p[0], &rs);
	IOSHOW(select(p[0] + 1, &rs, NULL, NULL, NULL));
	printf("  read end set: %d\n", FD_ISSET(p[0], &rs) != 0);
	show_status_io("writer", io_reap(pid));
	closep(p);

	CASE("select_woken_by_reader_exit");
	io_pipe(p);
	io_fill(p[1], 4096);
	if ((pid = io_fork()) == 0) {
		io_wait_sleeping(parent);
		_exit(0);
	}
	io_close(p[0]);
	{
		fd_set ws;
		FD_ZERO(&ws);
		FD_SET(p[1], &ws);
		IOSHOW(select(p[1] + 1, NULL, &ws, NULL, NULL));
		printf("  write end set: %d\n", FD_ISSET(p[1], &ws) != 0);
	}
	show_status_io("reader", io_reap(pid));
	io_close(p[1]);

	CASE("pselect_mask_unblocks_pending_signal");
	io_handler(SIGUSR1, on_usr1, 0);
	io_pipe(p);
	{
		sigset_t block, empty, old;
		struct timespec ts = { 5, 0 };
		sigemptyset(&block);
		sigaddset(&block, SIGUSR1);
		sigemptyset(&empty);
		sigprocmask(SIG_BLOCK, &block, &old);
		g_usr1 = 0;
		raise(SIGUSR1);
		FD_ZERO(&rs);
		FD_SET(p[0], &rs);
		IOSHOW(pselect(p[0] + 1, &rs, NULL, NULL, &ts, &empty));
		printf("  handler ran %d time(s), pending after: %s, timeout after: %s\n", g_usr1,
		       pending(SIGUSR1) ? "yes" : "no",
		       ts.tv_sec == 5 && ts.tv_nsec == 0 ? "unchanged" : "changed");

		CASE("pselect_ready_fd_leaves_signal_pending");
		IOSHOW(write(p[1], "x", 1));
		g_usr1 = 0;
		raise(SIGUSR1);
		FD_ZERO(&rs);
		FD_SET(p[0], &rs);
		IOSHOW(pselect(p[0] + 1, &rs, NULL, NULL, NULL, &empty));
		printf("  read end set: %d, handler ran %d time(s), pending after: %s\n",
		       FD_ISSET(p[0], &rs) != 0, g_usr1, pending(SIGUSR1) ? "yes" : "no");
		sigprocmask(SIG_SETMASK, &old, NULL);
		printf("  after unblocking: handler ran %d time(s)\n", g_usr1);
	}
	IOSHOW(read(p[0], buf, 1));

	CASE("pselect_timeout_not_written");
	{
		struct timespec ts = { 0, 30 * 1000 * 1000 };
		FD_ZERO(&rs);
		FD_SET(p[0], &rs);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		IOSHOW(pselect(p[0] + 1, &rs, NULL, NULL, &ts, NULL));
		printf("  waited at least 30 ms: %s; timeout after: %s\n",
		       ms_since(&t0) >= 30 ? "yes" : "no",
		       ts.tv_sec == 0 && ts.tv_nsec == 30 * 1000 * 1000 ? "unchanged" : "changed");
		ts.tv_nsec = 1000 * 1000 * 1000;
		IOSHOW(pselect(p[0] + 1, &rs, NULL, NULL, &ts, NULL));
	}
	closep(p);
	return 0;
}
