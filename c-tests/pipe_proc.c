/* Pipes between processes: EOF when the last writer anywhere is gone
 * (exit, SIGKILL, close on exec), EPIPE when the last reader is gone,
 * PIPE_BUF atomicity with concurrent writers, fds inherited through exec. */
#include "common.h"

#define RECS 32
#define WRITERS 4

/* exec'd image: report on the inherited fds given on the command line. */
static int exec_io(char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	int r = atoi(argv[2]), w = atoi(argv[3]), c = atoi(argv[4]);
	char buf[256];
	long n, total = 0;
	printf("  exec'd: F_GETFD read fd = %d, write fd = %d\n", fcntl(r, F_GETFD), fcntl(w, F_GETFD));
	errno = 0;
	n = fcntl(c, F_GETFD);
	printf("  exec'd: F_GETFD O_CLOEXEC fd = %ld %s\n", n, errname_io(errno));
	errno = 0;
	n = read(c, buf, 1);
	printf("  exec'd: read O_CLOEXEC fd = %ld %s\n", n, errname_io(errno));
	while ((n = read(r, buf + total, sizeof buf - 1 - total)) > 0)
		total += n;
	buf[total] = 0;
	printf("  exec'd: read until EOF (%ld): %ld bytes \"%s\"\n", n, total, buf);
	n = snprintf(buf, sizeof buf, "exec'd image got %ld bytes", total);
	if (write(w, buf, n) != n)
		return 1;
	return 0;
}

/* exec'd image: hold the inherited fds until a byte or EOF arrives on argv[2]. */
static int exec_hold(char **argv)
{
	char c;
	return read(atoi(argv[2]), &c, 1) < 0;
}

static void exec_self(const char *mode, int a, int b, int c)
{
	char s[3][16];
	snprintf(s[0], 16, "%d", a);
	snprintf(s[1], 16, "%d", b);
	snprintf(s[2], 16, "%d", c);
	execl("/proc/self/exe", "pipe_proc", mode, s[0], s[1], s[2], (char *)NULL);
	_exit(SETUP_FAIL);
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "exec-io"))
		return exec_io(argv);
	if (argc == 5 && !strcmp(argv[1], "exec-hold"))
		return exec_hold(argv);
	setup();
	alarm(20);
	signal(SIGPIPE, SIG_IGN);
	int p[2], s[2], q[2];
	pid_t pid;
	static char buf[WRITERS * RECS * 4096 + 1], big[100000];
	long n;
	memset(big, 'w', sizeof big);

	CASE("proc_eof_after_writer_exits");
	io_pipe(p);
	if ((pid = io_fork()) == 0) {
		io_close(p[0]);
		if (write(p[1], "from child", 10) != 10)
			_exit(1);
		_exit(0);
	}
	io_close(p[1]);
	n = read_all(p[0], buf, sizeof buf);
	printf("  read until EOF: %ld bytes \"%.*s\"\n", n, (int)n, buf);
	show_status_io("child", io_reap(pid));
	io_close(p[0]);

	CASE("proc_eof_waits_for_every_writer");
	io_pipe(p);
	io_pipe(s);
	if ((pid = io_fork()) == 0) {
		io_close(p[0]);
		io_close(s[1]);
		io_wait(s[0]);
		_exit(0);
	}
	io_close(s[0]);
	io_close(p[1]);
	io_set_nonblock(p[0], 1);
	IOSHOW(read(p[0], buf, 10));
	show_poll1("read end", p[0], POLLIN);
	io_post(s[1]);
	show_status_io("child", io_reap(pid));
	IOSHOW(read(p[0], buf, 10));
	show_poll1("read end", p[0], POLLIN);
	io_close(p[0]);
	io_close(s[1]);

	CASE("proc_eof_before_reap");
	/* Exit closes the fds: EOF comes while the child is still a zombie. */
	io_pipe(p);
	if ((pid = io_fork()) == 0) {
		io_close(p[0]);
		_exit(0);
	}
	io_close(p[1]);
	IOSHOW(read(p[0], buf, 10));
	show_status_io("child", io_reap(pid));
	io_close(p[0]);

	CASE("proc_writer_sigkilled");
	io_pipe(p);
	io_pipe(s);
	if ((pid = io_fork()) == 0) {
		io_close(p[0]);
		io_close(s[0]);
		if (write(p[1], "partial", 7) != 7)
			_exit(1);
		io_post(s[1]);
		for (;;)
			pause();
	}
	io_close(p[1]);
	io_close(s[1]);
	io_wait(s[0]);
	kill(pid, SIGKILL);
	show_status_io("child", io_reap(pid));
	n = IOSHOW(read(p[0], buf, 100));
	printf("  data: \"%.*s\"\n", (int)(n > 0 ? n : 0), buf);
	IOSHOW(read(p[0], buf, 100));
	show_poll1("read end", p[0], POLLIN);
	io_close(p[0]);
	io_close(s[0]);

	CASE("proc_writer_sigkilled_while_blocked");
	io_pipe(p);
	if ((pid = io_fork()) == 0) {
		io_close(p[0]);
		_exit(write(p[1], big, sizeof big) < 0);
	}
	io_close(p[1]);
	{
		struct timespec ts = { 0, 1000000 };
		while (io_nread(p[0]) < 65536)
			nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	show_status_io("child", io_reap(pid));
	printf("  read until EOF: %ld bytes\n", read_all(p[0], buf, sizeof buf));
	io_close(p[0]);

	CASE("proc_reader_sigkilled_epipe");
	io_pipe(p);
	io_pipe(s);
	if ((pid = io_fork()) == 0) {
		io_close(p[1]);
		io_close(s[0]);
		io_post(s[1]);
		for (;;)
			pause();
	}
	io_close(p[0]);
	io_close(s[1]);
	io_wait(s[0]);
	IOSHOW(write(p[1], "before", 6));
	show_poll1("write end", p[1], POLLOUT);
	kill(pid, SIGKILL);
	show_status_io("child", io_reap(pid));
	IOSHOW(write(p[1], "after", 5));
	show_poll1("write end", p[1], POLLOUT);
	io_close(p[1]);
	io_close(s[0]);

	CASE("proc_pipe_buf_atomic");
	io_pipe(p);
	io_pipe(s);
	pid_t w[WRITERS];
	for (int i = 0; i < WRITERS; i++) {
		if ((w[i] = io_fork()) == 0) {
			char rec[4096], c;
			memset(rec, 'A' + i, sizeof rec);
			io_close(p[0]);
			io_close(s[1]);
			if (read(s[0], &c, 1) != 0)
				_exit(1);
			for (int k = 0; k < RECS; k++)
				if (write(p[1], rec, sizeof rec) != sizeof rec)
					_exit(1);
			_exit(0);
		}
	}
	io_close(p[1]);
	io_close(s[0]);
	io_close(s[1]); /* releases every writer at once */
	{
		long total = 0;
		/* Odd-sized reads, so record boundaries fall inside reads. */
		while ((n = read(p[0], buf + total, 1000)) > 0)
			total += n;
		int whole = 0, per[WRITERS] = { 0 };
		for (long r = 0; r + 4096 <= total; r += 4096) {
			char c = buf[r];
			long k = 1;
			while (k < 4096 && buf[r + k] == c)
				k++;
			if (k == 4096 && c >= 'A' && c < 'A' + WRITERS) {
				whole++;
				per[c - 'A']++;
			}
		}
		printf("  %ld bytes, %d whole records; per writer:", total, whole);
		for (int i = 0; i < WRITERS; i++)
			printf(" %d", per[i]);
		printf("\n");
	}
	for (int i = 0; i < WRITERS; i++)
		show_status_io("writer", io_reap(w[i]));
	io_close(p[0]);

	CASE("proc_large_writes_totals");
	/* Writes above PIPE_BUF may interleave; only the totals are fixed. */
	io_pipe(p);
	io_pipe(s);
	for (int i = 0; i < 2; i++) {
		if ((w[i] = io_fork()) == 0) {
			char c;
			memset(big, 'a' + i, sizeof big);
			io_close(p[0]);
			io_close(s[1]);
			if (read(s[0], &c, 1) != 0)
				_exit(1);
			for (int k = 0; k < 3; k++)
				if (write(p[1], big, sizeof big) != sizeof big)
					_exit(1);
			_exit(0);
		}
	}
	io_close(p[1]);
	io_close(s[0]);
	io_close(s[1]);
	{
		long count[2] = { 0, 0 }, other = 0;
		while ((n = read(p[0], buf, 65536)) > 0)
			for (long k = 0; k < n; k++)
				if (buf[k] == 'a' || buf[k] == 'b')
					count[buf[k] - 'a']++;
				else
					other++;
		printf("  writer a: %ld bytes, writer b: %ld bytes, other: %ld\n", count[0], count[1], other);
	}
	for (int i = 0; i < 2; i++)
		show_status_io("writer", io_reap(w[i]));
	io_close(p[0]);

	CASE("proc_exec_inherits_fds");
	io_pipe(p);  /* parent -> exec'd */
	io_pipe(q);  /* exec'd -> parent */
	if (pipe2(s, O_CLOEXEC))
		die("pipe2");
	if ((pid = io_fork()) == 0) {
		io_close(p[1]);
		io_close(q[0]);
		exec_self("exec-io", p[0], q[1], s[0]);
	}
	io_close(p[0]);
	io_close(q[1]);
	if (write(p[1], "to the exec'd image", 19) != 19)
		die("write");
	io_close(p[1]);
	n = read_all(q[0], buf, sizeof buf);
	show_status_io("exec'd child", io_reap(pid));
	printf("  parent read until EOF: \"%.*s\"\n", (int)n, buf);
	io_close(q[0]);
	closep(s);

	CASE("proc_exec_closes_cloexec_writer");
	/* The exec'd image is alive, but its O_CLOEXEC copy of the write end
	 * went with the exec: the parent's close is the last one. */
	if (pipe2(p, O_CLOEXEC))
		die("pipe2");
	io_pipe(s);
	if ((pid = io_fork()) == 0) {
		io_close(s[1]);
		exec_self("exec-hold", s[0], p[1], p[1]);
	}
	io_close(s[0]);
	io_close(p[1]);
	IOSHOW(read(p[0], buf, 10));
	show_poll1("read end", p[0], POLLIN);
	io_post(s[1]);
	show_status_io("exec'd child", io_reap(pid));
	io_close(p[0]);
	io_close(s[1]);

	CASE("proc_exec_keeps_plain_writer");
	io_pipe(p);
	io_pipe(s);
	if ((pid = io_fork()) == 0) {
		io_close(s[1]);
		io_close(p[0]);
		exec_self("exec-hold", s[0], p[1], p[1]);
	}
	io_close(s[0]);
	io_close(p[1]);
	io_set_nonblock(p[0], 1);
	IOSHOW(read(p[0], buf, 10));
	show_poll1("read end", p[0], POLLIN);
	io_close(s[1]);
	show_status_io("exec'd child", io_reap(pid));
	IOSHOW(read(p[0], buf, 10));
	show_poll1("read end", p[0], POLLIN);
	io_close(p[0]);

	CASE("proc_ping_pong");
	io_pipe(p);
	io_pipe(q);
	if ((pid = io_fork()) == 0) {
		io_close(p[1]);
		io_close(q[0]);
		unsigned v;
		while (read(p[0], &v, sizeof v) == sizeof v) {
			v = v * 3 + 1;
			if (write(q[1], &v, sizeof v) != sizeof v)
				_exit(1);
		}
		_exit(0);
	}
	io_close(p[0]);
	io_close(q[1]);
	{
		unsigned v = 1, sum = 0;
		int rounds = 0;
		for (int i = 0; i < 200; i++) {
			if (write(p[1], &v, sizeof v) != sizeof v || read(q[0], &v, sizeof v) != sizeof v)
				break;
			sum += v;
			rounds++;
		}
		printf("  %d round trips, checksum %u\n", rounds, sum);
	}
	io_close(p[1]);
	IOSHOW(read(q[0], buf, 4));
	show_status_io("child", io_reap(pid));
	io_close(q[0]);
	return 0;
}
