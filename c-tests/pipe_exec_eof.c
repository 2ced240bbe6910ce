/* End of file as soon as the last writer goes, when an exec or an exit takes it: the
 * kernel wakes the reader in pipe_release. A writer's end closed by O_CLOEXEC at exec (fork,
 * vfork, and an exec of a program without the shim), an inherited end the exec'd image never
 * used closed by its exit, by close(), by glibc's internal close (fclose), by close_range() or
 * by dup2() over it; readers blocked in read, poll, epoll_wait and recv. Each exec'd image
 * stamps the time just before it lets
 * its end go (or as it starts, for an exec that closes it), and the reader prints whether
 * its end of file came within 80 ms of that stamp: at once on the kernel; a reader that
 * learnt of it only from a periodic liveness check (0.1 s) would be late. The latency
 * itself is measured against the kernel's in tests/tests/exec_programs.rs. */
#include "common.h"
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define LATE_MS 80
/* A memfd holding the last stamp: times differ from run to run, so they do not travel
 * through the pipes (which `ipcshim diff` compares); a pipe only says a stamp is there. */
#define STAMP_FD 50

extern char **environ;

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void stamp(int fd)
{
	long long t = now_ns();
	if (pwrite(STAMP_FD, &t, sizeof t, 0) != sizeof t || write(fd, "s", 1) != 1)
		_exit(SETUP_FAIL);
}

/* The exec'd image: argv = self mode stamp-fd hold-fd target-fd. */
static int exec_image(char **argv)
{
	const char *mode = argv[1];
	int st = atoi(argv[2]), hold = atoi(argv[3]), target = atoi(argv[4]);
	char c;
	if (!strcmp(mode, "hold")) {
		/* The exec itself closed the end: stamp as the image starts. */
		stamp(st);
	} else if (!strcmp(mode, "exit")) {
		stamp(st);
		exit(0);
	} else if (!strcmp(mode, "close")) {
		stamp(st);
		if (close(target))
			return SETUP_FAIL;
	} else if (!strcmp(mode, "close_range")) {
		stamp(st);
		if (syscall(SYS_close_range, target, ~0U, 0))
			return SETUP_FAIL;
	} else if (!strcmp(mode, "fclose")) {
		/* glibc's internal fcntl and close (fdopen's and fclose's), from call sites that
		 * were rewritten after their first traps: the end is not in the fd table yet. */
		for (int i = 0; i < 4; i++) {
			int fd = open("/dev/null", O_RDONLY);
			FILE *f = fd < 0 ? NULL : fdopen(fd, "r");
			if (!f || fclose(f))
				return SETUP_FAIL;
		}
		FILE *f = fdopen(target, "w");
		stamp(st);
		if (!f || fclose(f))
			return SETUP_FAIL;
	} else if (!strcmp(mode, "dup2")) {
		int nul = open("/dev/null", O_WRONLY);
		stamp(st);
		if (nul < 0 || dup2(nul, target) != target)
			return SETUP_FAIL;
	}
	/* Live on until the parent saw its end of file. */
	return read(hold, &c, 1) < 0;
}

static void exec_self(const char *mode, int st, int hold, int target)
{
	char s[3][16];
	snprintf(s[0], 16, "%d", st);
	snprintf(s[1], 16, "%d", hold);
	snprintf(s[2], 16, "%d", target);
	execl("/proc/self/exe", "pipe_exec_eof", mode, s[0], s[1], s[2], (char *)NULL);
	_exit(SETUP_FAIL);
}

/* After the reader's end of file: how late it was after the stamp. */
static void show_late(long long eof, int st)
{
	long long t;
	char c;
	if (read(st, &c, 1) != 1 || pread(STAMP_FD, &t, sizeof t, 0) != sizeof t)
		die("read stamp");
	printf("  end of file within %d ms of the writer's going: %s\n", LATE_MS,
	       eof - t < LATE_MS * 1000000LL ? "yes" : "no");
}

struct child {
	pid_t pid;
	int st, hold;
};

/* Forks a child that execs self in `mode` with the pipe end `keep` (its number passed as the
 * target) and closes `drop` first; the parent keeps the stamp's read end and the hold's write
 * end. */
static struct child spawn(const char *mode, int keep, int drop)
{
	int st[2], hold[2];
	struct child c;
	io_pipe(st);
	io_pipe(hold);
	if ((c.pid = io_fork()) == 0) {
		io_close(st[0]);
		io_close(hold[1]);
		if (drop >= 0)
			io_close(drop);
		exec_self(mode, st[1], hold[0], keep);
	}
	io_close(st[1]);
	io_close(hold[0]);
	c.st = st[0];
	c.hold = hold[1];
	return c;
}

static void finish(struct child c)
{
	io_post(c.hold);
	show_status_io("exec'd writer", io_reap(c.pid));
	io_close(c.st);
	io_close(c.hold);
}

/* Blocks in read until end of file; prints the result and its lateness. */
static void read_eof(int fd, struct child c)
{
	char buf[8];
	errno = 0;
	long n = read(fd, buf, sizeof buf);
	long long eof = now_ns();
	show_io("  read", n, errno);
	show_late(eof, c.st);
}

/* A writer's end that the exec'd image (in `mode`) lets go without using it; read to its end. */
static void untouched_writer(const char *mode)
{
	int p[2];
	io_pipe(p);
	struct child c = spawn(mode, p[1], p[0]);
	io_close(p[1]);
	read_eof(p[0], c);
	finish(c);
	io_close(p[0]);
}

int main(int argc, char **argv)
{
	if (argc == 5)
		return exec_image(argv);
	setup();
	alarm(20);
	int m = memfd_create("stamps", 0);
	if (m < 0 || dup2(m, STAMP_FD) != STAMP_FD || close(m))
		die("memfd");
	signal(SIGPIPE, SIG_IGN);
	int p[2], sv[2];
	struct child c;

	CASE("cloexec_writer_fork_exec");
	if (pipe2(p, O_CLOEXEC))
		die("pipe2");
	c = spawn("hold", p[1], p[0]);
	io_close(p[1]);
	read_eof(p[0], c);
	finish(c);
	io_close(p[0]);

	CASE("cloexec_writer_posix_spawn");
	/* posix_spawn execs from a vfork child, as Python's subprocess and make do. */
	{
		int st[2], hold[2];
		char a[3][16];
		if (pipe2(p, O_CLOEXEC))
			die("pipe2");
		io_pipe(st);
		io_pipe(hold);
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addclose(&fa, st[0]);
		posix_spawn_file_actions_addclose(&fa, hold[1]);
		snprintf(a[0], 16, "%d", st[1]);
		snprintf(a[1], 16, "%d", hold[0]);
		snprintf(a[2], 16, "%d", p[1]);
		char *args[] = { "pipe_exec_eof", "hold", a[0], a[1], a[2], NULL };
		if (posix_spawn(&c.pid, "/proc/self/exe", &fa, NULL, args, environ))
			die("posix_spawn");
		posix_spawn_file_actions_destroy(&fa);
		io_close(st[1]);
		io_close(hold[0]);
		c.st = st[0];
		c.hold = hold[1];
		io_close(p[1]);
		read_eof(p[0], c);
		finish(c);
		io_close(p[0]);
	}

	CASE("cloexec_writer_execs_a_program_without_the_shim");
	/* /sbin/ldconfig is static: no shim in the new image to wake anybody. */
	if (pipe2(p, O_CLOEXEC))
		die("pipe2");
	if ((c.pid = io_fork()) == 0) {
		int nul = open("/dev/null", O_WRONLY);
		if (nul < 0 || dup2(nul, 1) != 1)
			_exit(SETUP_FAIL);
		long long t = now_ns();
		if (pwrite(STAMP_FD, &t, sizeof t, 0) != sizeof t)
			_exit(SETUP_FAIL);
		execl("/sbin/ldconfig", "ldconfig", "--version", (char *)NULL);
		_exit(SETUP_FAIL);
	}
	io_close(p[1]);
	{
		char b;
		long long t;
		errno = 0;
		long r = read(p[0], &b, 1);
		long long eof = now_ns();
		show_io("  read", r, errno);
		if (pread(STAMP_FD, &t, sizeof t, 0) != sizeof t)
			die("read stamp");
		printf("  end of file within %d ms of the exec: %s\n", LATE_MS,
		       eof - t < LATE_MS * 1000000LL ? "yes" : "no");
	}
	show_status_io("ldconfig", io_reap(c.pid));
	io_close(p[0]);

	CASE("untouched_writer_exits_after_exec");
	io_pipe(p);
	c = spawn("exit", p[1], p[0]);
	io_close(p[1]);
	read_eof(p[0], c);
	show_status_io("exec'd writer", io_reap(c.pid));
	io_close(c.st);
	io_close(c.hold);
	io_close(p[0]);

	CASE("untouched_writer_closed_after_exec");
	untouched_writer("close");

	CASE("untouched_writer_fclosed_after_exec");
	untouched_writer("fclose");

	CASE("untouched_writer_close_range_after_exec");
	io_pipe(p);
	/* Above every other fd of the exec'd image: close_range(it, ~0) takes only it. */
	if (dup2(p[1], 60) != 60)
		die("dup2");
	io_close(p[1]);
	c = spawn("close_range", 60, p[0]);
	io_close(60);
	read_eof(p[0], c);
	finish(c);
	io_close(p[0]);

	CASE("untouched_writer_dup2_over_after_exec");
	untouched_writer("dup2");

	CASE("cloexec_writer_reader_in_poll");
	if (pipe2(p, O_CLOEXEC))
		die("pipe2");
	c = spawn("hold", p[1], p[0]);
	io_close(p[1]);
	{
		struct pollfd pf = { p[0], POLLIN, 0 };
		errno = 0;
		int r = poll(&pf, 1, 5000);
		long long eof = now_ns();
		printf("  poll = %d revents=%s\n", r, pollbits(pf.revents));
		show_late(eof, c.st);
	}
	finish(c);
	io_close(p[0]);

	CASE("cloexec_writer_reader_in_epoll_wait");
	if (pipe2(p, O_CLOEXEC))
		die("pipe2");
	c = spawn("hold", p[1], p[0]);
	io_close(p[1]);
	{
		int ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN }, out;
		if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev))
			die("epoll");
		int r = epoll_wait(ep, &out, 1, 5000);
		long long eof = now_ns();
		printf("  epoll_wait = %d events=%s\n", r, pollbits(r == 1 ? out.events : 0));
		show_late(eof, c.st);
		io_close(ep);
	}
	finish(c);
	io_close(p[0]);

	CASE("cloexec_socket_peer_execs");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		die("socketpair");
	c = spawn("hold", sv[1], sv[0]);
	io_close(sv[1]);
	{
		char buf[8];
		errno = 0;
		long n = recv(sv[0], buf, sizeof buf, 0);
		long long eof = now_ns();
		show_io("  recv", n, errno);
		show_late(eof, c.st);
	}
	finish(c);
	io_close(sv[0]);
	return 0;
}
