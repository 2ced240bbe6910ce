/* fcntl on pipes: file status flags shared by every fd of one open file
 * description (dup, fork) but not by a reopen; FD_CLOEXEC per fd;
 * F_GETPIPE_SZ/F_SETPIPE_SZ; the dup family and close_range. */
#include "common.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static volatile unsigned g_setsz_all = 0xffffffffu;

static int exec_hold(char **argv)
{
	char c;
	return read(atoi(argv[2]), &c, 1) < 0;
}

static void show_fl(const char *what, int fd)
{
	printf("  %s: F_GETFL=%#x F_GETFD=%d\n", what, fcntl(fd, F_GETFL), fcntl(fd, F_GETFD));
}

static void show_sz(const char *what, int fd)
{
	errno = 0;
	int r = fcntl(fd, F_GETPIPE_SZ);
	if (r < 0)
		printf("  F_GETPIPE_SZ %s = -1 %s\n", what, errname_io(errno));
	else
		printf("  F_GETPIPE_SZ %s = %d\n", what, r);
}

/* Non-blocking read of whatever is there: count or errno name. */
static void try_read(const char *what, int fd)
{
	char buf[64];
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	errno = 0;
	long r = read(fd, buf, sizeof buf);
	int e = errno;
	fcntl(fd, F_SETFL, fl);
	if (r < 0)
		printf("  read %s = -1 %s\n", what, errname_io(e));
	else
		printf("  read %s = %ld\n", what, r);
}

/* Is capability bit cap in this process's effective set? */
static int cap_effective(int cap)
{
	char line[256];
	unsigned long long eff = 0;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		die("status");
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	fclose(f);
	return (eff >> cap) & 1;
}

static void nobody_pipe_sz(void *arg)
{
	(void)arg;
	int p[2];
	io_pipe(p);
	show_sz("as nobody", p[0]);
	IOSHOW(fcntl(p[1], F_SETPIPE_SZ, 2 << 20));
	IOSHOW(fcntl(p[1], F_SETPIPE_SZ, 1 << 20));
	IOSHOW(fcntl(p[1], F_SETPIPE_SZ, (1 << 20) + 1));
	IOSHOW(fcntl(p[1], F_SETPIPE_SZ, 4096));
	IOSHOW(fcntl(p[1], F_SETPIPE_SZ, 1 << 20));
	closep(p);
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "exec-hold"))
		return exec_hold(argv);
	setup();
	alarm(10);
	signal(SIGPIPE, SIG_IGN);
	int p[2], q[2], s[2], d1, d2;
	pid_t pid;
	char buf[8192];
	static char big[1 << 16];
	memset(big, 'z', sizeof big);

	CASE("fcntl_setfl_bits");
	io_pipe(p);
	show_fl("read end", p[0]);
	IOSHOW(fcntl(p[0], F_SETFL, O_RDWR));
	show_fl("read end after F_SETFL O_RDWR", p[0]);
	IOSHOW(fcntl(p[1], F_SETFL, O_RDONLY | O_NONBLOCK));
	show_fl("write end after F_SETFL O_RDONLY|O_NONBLOCK", p[1]);
	IOSHOW(fcntl(p[1], F_SETFL, O_APPEND));
	show_fl("write end after F_SETFL O_APPEND", p[1]);
	IOSHOW(write(p[1], "ab", 2));
	IOSHOW(fcntl(p[1], F_SETFL, 0));
	show_fl("write end after F_SETFL 0", p[1]);
	closep(p);

	CASE("fcntl_nonblock_shared_by_dup");
	io_pipe(p);
	d1 = FDSHOW(dup(p[0]));
	IOSHOW(fcntl(d1, F_SETFL, O_NONBLOCK));
	show_fl("original", p[0]);
	try_read("original", p[0]);
	IOSHOW(read(p[0], buf, 1));
	IOSHOW(fcntl(p[0], F_SETFL, 0));
	show_fl("dup", d1);
	io_close(d1);
	closep(p);

	CASE("fcntl_nonblock_set_in_child");
	io_pipe(p);
	if ((pid = io_fork()) == 0) {
		_exit(fcntl(p[0], F_SETFL, O_NONBLOCK) != 0);
	}
	show_status_io("child", io_reap(pid));
	show_fl("parent's read end", p[0]);
	IOSHOW(read(p[0], buf, 1));
	closep(p);

	CASE("fcntl_reopen_is_new_description");
	/* Opening /proc/self/fd/N of a pipe opens the pipe again: a new file
	 * description with its own flags, and a new reader or writer. */
	io_pipe(p);
	{
		char path[64];
		snprintf(path, sizeof path, "/proc/self/fd/%d", p[0]);
		d1 = FDSHOW(open(path, O_RDONLY | O_NONBLOCK));
		show_fl("reopened read end", d1);
		show_fl("original read end", p[0]);
		d2 = FDSHOW(open(path, O_WRONLY));
		show_fl("reopened as write end", d2);
		IOSHOW(write(d2, "via reopen", 10));
		IOSHOW(read(d1, buf, 4));
		IOSHOW(read(p[0], buf, 100));
		io_close(p[1]);
		try_read("after original writer closed", d1);
		io_close(d2);
		try_read("after reopened writer closed", d1);
		io_close(d1);
		io_close(p[0]);
	}

	CASE("fcntl_cloexec_per_fd");
	if (pipe2(p, O_CLOEXEC))
		die("pipe2");
	d1 = FDSHOW(dup(p[0]));
	show_fl("original", p[0]);
	show_fl("dup", d1);
	IOSHOW(fcntl(p[0], F_SETFD, 0));
	IOSHOW(fcntl(d1, F_SETFD, FD_CLOEXEC));
	show_fl("original", p[0]);
	show_fl("dup", d1);
	IOSHOW(fcntl(p[0], F_SETFD, 0xfe));
	show_fl("original after F_SETFD 0xfe", p[0]);
	io_close(d1);
	closep(p);

	CASE("fcntl_pipe_sz_default");
	io_pipe(p);
	show_sz("read end", p[0]);
	show_sz("write end", p[1]);
	{
		int fd = open("/dev/null", O_RDWR);
		IOSHOW(fcntl(fd, F_GETPIPE_SZ));
		IOSHOW(fcntl(fd, F_SETPIPE_SZ, 8192));
		io_close(fd);
		fd = open(".", O_RDONLY | O_DIRECTORY);
		IOSHOW(fcntl(fd, F_GETPIPE_SZ));
		io_close(fd);
		IOSHOW(fcntl(-1, F_GETPIPE_SZ));
	}

	CASE("fcntl_pipe_sz_rounding");
	{
		static const unsigned sizes[] = { 0, 1, 4095, 4096, 4097, 5000, 8192, 65535,
						  65537, 1 << 20 };
		for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
			errno = 0;
			int r = fcntl(p[1], F_SETPIPE_SZ, sizes[i]);
			printf("  F_SETPIPE_SZ %u = %d %s, F_GETPIPE_SZ = %d\n", sizes[i], r,
			       r < 0 ? errname_io(errno) : "", fcntl(p[0], F_GETPIPE_SZ));
		}
	}

	CASE("fcntl_pipe_sz_limits");
	/* Only CAP_SYS_RESOURCE may pass /proc/sys/fs/pipe-max-size (1 MiB):
	 * root without it (as in this sandbox) gets EPERM like nobody. */
	printf("  CAP_SYS_RESOURCE effective: %s\n", cap_effective(24) ? "yes" : "no");
	IOSHOW(fcntl(p[1], F_SETPIPE_SZ, 2 << 20));
	show_sz("read end", p[0]);
	IOSHOW(fcntl(p[1], F_SETPIPE_SZ, 0x80000001u));
	IOSHOW(fcntl(p[1], F_SETPIPE_SZ, g_setsz_all));
	IOSHOW(fcntl(p[1], F_SETPIPE_SZ, -4096));
	show_sz("read end", p[0]);
	in_child(NOBODY, nobody_pipe_sz, NULL);
	closep(p);

	CASE("fcntl_pipe_sz_capacity");
	io_pipe(p);
	IOSHOW(fcntl(p[0], F_SETPIPE_SZ, 8192));
	printf("  1-byte writes accepted: %ld\n", io_fill(p[1], 1));
	printf("  drained: %ld\n", io_drain(p[0]));
	IOSHOW(fcntl(p[0], F_SETPIPE_SZ, 1 << 20));
	printf("  4096-byte writes accepted: %ld\n", io_fill(p[1], 4096));
	printf("  drained: %ld\n", io_drain(p[0]));
	IOSHOW(fcntl(p[0], F_SETPIPE_SZ, 4096));
	printf("  1-byte writes accepted: %ld\n", io_fill(p[1], 1));
	printf("  drained: %ld\n", io_drain(p[0]));
	/* One slot: a page-sized write cannot share it, whatever is free. */
	io_set_nonblock(p[1], 1);
	IOSHOW(write(p[1], big, 10));
	IOSHOW(write(p[1], big, 4096));
	IOSHOW(write(p[1], big, 4086));
	IOSHOW(write(p[1], big, 1));
	io_set_nonblock(p[1], 0);
	printf("  drained: %ld\n", io_drain(p[0]));
	closep(p);

	CASE("fcntl_pipe_sz_ebusy");
	io_pipe(p);
	for (int i = 0; i < 3; i++)
		if (write(p[1], big, 4096) != 4096)
			die("write");
	IOSHOW(fcntl(p[1], F_SETPIPE_SZ, 8192));
	IOSHOW(fcntl(p[1], F_SETPIPE_SZ, 12288));
	show_sz("read end", p[0]);
	printf("  drained: %ld\n", io_drain(p[0]));
	/* Slots, not bytes: 210 bytes in two pages do not fit one page. */
	IOSHOW(write(p[1], big, 4000));
	IOSHOW(write(p[1], "0123456789", 10));
	IOSHOW(write(p[1], big, 200));
	IOSHOW(read(p[0], buf, 4000));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	IOSHOW(fcntl(p[1], F_SETPIPE_SZ, 4096));
	IOSHOW(read(p[0], buf, 10));
	printf("  data: \"%.10s\"\n", buf);
	IOSHOW(fcntl(p[1], F_SETPIPE_SZ, 4096));
	show_sz("read end", p[0]);
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	printf("  drained: %ld\n", io_drain(p[0]));
	closep(p);

	CASE("fcntl_pipe_sz_shared");
	io_pipe(p);
	d1 = FDSHOW(dup(p[0]));
	if ((pid = io_fork()) == 0)
		_exit(fcntl(p[1], F_SETPIPE_SZ, 16384) != 16384);
	show_status_io("child", io_reap(pid));
	show_sz("read end", p[0]);
	show_sz("dup", d1);
	io_close(d1);
	closep(p);

	CASE("fcntl_eof_after_last_dup");
	io_pipe(p);
	d1 = FDSHOW(dup(p[1]));
	d2 = FDSHOW(fcntl(p[1], F_DUPFD_CLOEXEC, 0));
	io_close(p[1]);
	try_read("after closing the original", p[0]);
	io_close(d1);
	try_read("after closing dup", p[0]);
	show_poll1("read end", p[0], POLLIN);
	io_close(d2);
	try_read("after closing F_DUPFD_CLOEXEC copy", p[0]);
	show_poll1("read end", p[0], POLLIN);
	io_close(p[0]);

	CASE("fcntl_dup2_onto_open_fd");
	io_pipe(p);
	io_pipe(q);
	/* p[0] becomes q's read end: p loses its only reader. */
	printf("  dup2 returns the target: %s\n", dup2(q[0], p[0]) == p[0] ? "yes" : "no");
	IOSHOW(write(p[1], "x", 1));
	IOSHOW(write(q[1], "to q", 4));
	IOSHOW(read(p[0], buf, 100));
	printf("  dup2 onto itself returns it: %s\n", dup2(q[1], q[1]) == q[1] ? "yes" : "no");
	IOSHOW(dup2(-1, q[1]));
	IOSHOW(dup2(q[1], -1));
	closep(p);
	closep(q);

	CASE("fcntl_dup3");
	io_pipe(p);
	d1 = dup(1);
	printf("  dup3 returns the target: %s\n", dup3(p[1], d1, O_CLOEXEC) == d1 ? "yes" : "no");
	show_fl("dup3 copy", d1);
	IOSHOW(dup3(p[1], p[1], 0));
	IOSHOW(dup3(p[1], p[1], O_CLOEXEC));
	IOSHOW(dup3(p[1], d1, O_NONBLOCK));
	IOSHOW(write(d1, "via dup3", 8));
	io_close(p[1]);
	IOSHOW(read(p[0], buf, 100));
	io_close(d1);
	IOSHOW(read(p[0], buf, 100));
	io_close(p[0]);

	CASE("fcntl_f_dupfd");
	io_pipe(p);
	printf("  F_DUPFD 100 gives 100: %s\n", fcntl(p[1], F_DUPFD, 100) == 100 ? "yes" : "no");
	printf("  F_DUPFD 100 again gives 101: %s\n", fcntl(p[1], F_DUPFD, 100) == 101 ? "yes" : "no");
	printf("  F_DUPFD_CLOEXEC 100 gives 102: %s\n",
	       fcntl(p[1], F_DUPFD_CLOEXEC, 100) == 102 ? "yes" : "no");
	show_fl("F_DUPFD copy", 100);
	show_fl("F_DUPFD_CLOEXEC copy", 102);
	{
		struct rlimit rl;
		getrlimit(RLIMIT_NOFILE, &rl);
		IOSHOW(fcntl(p[1], F_DUPFD, (int)rl.rlim_cur));
		IOSHOW(fcntl(p[1], F_DUPFD, -1));
	}
	io_close(p[1]);
	io_close(100);
	io_close(101);
	try_read("with the F_DUPFD_CLOEXEC copy open", p[0]);
	io_close(102);
	try_read("all write copies closed", p[0]);
	io_close(p[0]);

	CASE("fcntl_close_range");
	io_pipe(p);
	io_pipe(q);
	if (dup2(p[1], 200) != 200 || dup2(q[0], 201) != 201 || dup2(q[1], 202) != 202)
		die("dup2");
	io_close(p[1]);
	io_close(q[0]);
	IOSHOW(close_range(200, 201, 0));
	try_read("p after close_range", p[0]);
	IOSHOW(write(202, "x", 1));
	IOSHOW(fcntl(200, F_GETFD));
	IOSHOW(fcntl(201, F_GETFD));
	IOSHOW(fcntl(202, F_GETFD));
	IOSHOW(close_range(203, 202, 0));
	IOSHOW(close_range(202, 202, 0x80));
	IOSHOW(close_range(202, ~0U, 0));
	IOSHOW(fcntl(202, F_GETFD));
	io_close(p[0]);
	io_close(q[1]);

	CASE("fcntl_close_range_cloexec");
	io_pipe(p);
	io_pipe(s);
	if (dup2(p[1], 200) != 200)
		die("dup2");
	io_close(p[1]);
	IOSHOW(close_range(200, 210, CLOSE_RANGE_CLOEXEC));
	show_fl("write end", 200);
	IOSHOW(write(200, "still open", 10));
	if ((pid = io_fork()) == 0) {
		char a[16];
		io_close(s[1]);
		snprintf(a, sizeof a, "%d", s[0]);
		execl("/proc/self/exe", "pipe_fcntl", "exec-hold", a, (char *)NULL);
		_exit(SETUP_FAIL);
	}
	io_close(s[0]);
	io_close(200);
	IOSHOW(read(p[0], buf, 100));
	/* The exec'd child is alive, but its copy closed on exec. */
	IOSHOW(read(p[0], buf, 100));
	io_post(s[1]);
	show_status_io("exec'd child", io_reap(pid));
	io_close(s[1]);
	io_close(p[0]);
	return 0;
}
