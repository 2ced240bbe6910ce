/* Pipe transfers that fault part way: the kernel's counts and what stays
 * queued. Buffers end at a PROT_NONE page (io_edge), so the fault comes
 * after exactly the valid bytes. */
#include "common.h"

static char g_pat[3 * 4096];

/* Fill buf with the pattern starting at offset off. */
static void pat(char *buf, size_t off, size_t n)
{
	memcpy(buf, g_pat + off, n);
}

static int is_pat(const char *buf, size_t off, size_t n)
{
	return !memcmp(buf, g_pat + off, n);
}

/* Read everything queued (non-blocking) and say whether it is pattern from off. */
static void check_rest(int fd, size_t off)
{
	static char buf[1 << 17];
	long n = 0, r;
	io_set_nonblock(fd, 1);
	while ((r = read(fd, buf + n, sizeof buf - n)) > 0)
		n += r;
	io_set_nonblock(fd, 0);
	printf("  read back %ld bytes, pattern from %zu: %s\n", n, off,
	       is_pat(buf, off, n) ? "yes" : "no");
}

static int g_fault_fd;
static char *g_none;
static long g_fault_ret;
static int g_fault_errno;

static void on_usr1_fault(int sig)
{
	(void)sig;
	errno = 0;
	g_fault_ret = write(g_fault_fd, g_none, 10);
	g_fault_errno = errno;
}

int main(void)
{
	setup();
	alarm(10);
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof g_pat; i++)
		g_pat[i] = 'A' + (i * 7 + i / 26) % 26;
	int p[2];
	char *e100 = io_edge(100), *e4196 = io_edge(4196), *e4096 = io_edge(4096);
	char *none = io_edge(0), *ro = io_edge(PAGE);
	char *volatile nul = NULL;
	char buf[8192];

	CASE("fault_write_before_any_page_filled");
	io_pipe(p);
	pat(e100, 0, 100);
	IOSHOW(write(p[1], e100, 300));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	IOSHOW(write(p[1], "xyz", 3));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	closep(p);

	CASE("fault_write_after_one_page");
	io_pipe(p);
	pat(e4196, 0, 4196);
	IOSHOW(write(p[1], e4196, 4396));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	check_rest(p[0], 0);
	closep(p);

	/* The third page faults 1000 bytes in: two whole pages are queued (the shim
	 * copies large writes a batch of pages at a time, with non-temporal stores
	 * whose fault ends a 64-byte chunk early). A stream socket's send frees the
	 * skb that faulted: nothing is queued, then (64 KiB from 40000 valid bytes)
	 * only the first skb. */
	CASE("fault_write_after_two_pages_mid_page");
	char *e9192 = io_edge(9192);
	pat(e9192, 0, 9192);
	io_pipe(p);
	IOSHOW(write(p[1], e9192, 12288));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	check_rest(p[0], 0);
	closep(p);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		die("socketpair");
	IOSHOW(write(sv[0], e9192, 12288));
	printf("  FIONREAD = %d\n", io_nread(sv[1]));
	check_rest(sv[1], 0);
	char *e40000 = io_edge(40000);
	memset(e40000, 'q', 40000);
	IOSHOW(write(sv[0], e40000, 65536));
	printf("  FIONREAD = %d\n", io_nread(sv[1]));
	close(sv[0]);
	close(sv[1]);

	CASE("fault_write_merging_into_queued_data");
	/* The first (count % 4096) bytes merge into the queued page before the
	 * fault, so the count depends on what was already there. */
	io_pipe(p);
	IOSHOW(write(p[1], g_pat, 10));
	pat(e100, 10, 100);
	IOSHOW(write(p[1], e100, 300));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	pat(e4196, 10, 4196);
	IOSHOW(write(p[1], e4196, 4396));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	check_rest(p[0], 0);
	closep(p);

	CASE("fault_write_leaves_nothing_readable");
	/* A write that faults before filling its first page leaves no trace:
	 * not readable for poll, EAGAIN for a non-blocking read. */
	io_pipe(p);
	pat(e100, 0, 100);
	IOSHOW(write(p[1], e100, 300));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	show_poll1("read end", p[0], POLLIN);
	io_set_nonblock(p[0], 1);
	IOSHOW(read(p[0], buf, sizeof buf));
	show_poll1("read end", p[0], POLLIN);
	IOSHOW(read(p[0], buf, sizeof buf));
	io_set_nonblock(p[0], 0);
	closep(p);

	CASE("fault_read_into_buffer_turning_bad");
	io_pipe(p);
	IOSHOW(write(p[1], g_pat, 300));
	memset(e100, '.', 100);
	IOSHOW(read(p[0], e100, 300));
	printf("  first 100 bytes of the buffer: %s\n",
	       is_pat(e100, 0, 100) ? "copied" : e100[0] == '.' ? "untouched" : "other");
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	check_rest(p[0], 0);
	closep(p);

	CASE("fault_read_second_page");
	io_pipe(p);
	IOSHOW(write(p[1], g_pat, 4096));
	IOSHOW(write(p[1], g_pat + 4096, 300));
	IOSHOW(read(p[0], e4196, 4396));
	printf("  first 4096 bytes: %s\n", is_pat(e4196, 0, 4096) ? "copied" : "not copied");
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	check_rest(p[0], 4096);
	closep(p);

	CASE("fault_read_within_one_page");
	/* 600 bytes in one page, buffer good for 4096 then bad: the copy
	 * fits, so no fault. Then 5000 bytes in two pages. */
	io_pipe(p);
	IOSHOW(write(p[1], g_pat, 600));
	IOSHOW(read(p[0], e4096, 4200));
	IOSHOW(write(p[1], g_pat, 5000));
	IOSHOW(read(p[0], e4096, 8192));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	check_rest(p[0], 4096);
	closep(p);

	CASE("fault_writev_bad_second_iov");
	io_pipe(p);
	{
		struct iovec a[2] = { { g_pat, 10 }, { none, 10 } };
		struct iovec b[2] = { { g_pat, 4096 }, { none, 10 } };
		struct iovec c[3] = { { g_pat, 4000 }, { g_pat + 4000, 96 }, { nul, 1 } };
		IOSHOW(writev(p[1], a, 2));
		printf("  FIONREAD = %d\n", io_nread(p[0]));
		IOSHOW(writev(p[1], b, 2));
		printf("  FIONREAD = %d\n", io_nread(p[0]));
		check_rest(p[0], 0);
		IOSHOW(writev(p[1], c, 3));
		printf("  FIONREAD = %d\n", io_nread(p[0]));
		check_rest(p[0], 0);
	}
	closep(p);

	CASE("fault_readv_bad_second_iov");
	io_pipe(p);
	{
		char x[4096];
		struct iovec a[2] = { { x, 10 }, { none, 10 } };
		struct iovec b[2] = { { x, 4096 }, { none, 100 } };
		IOSHOW(write(p[1], g_pat, 20));
		IOSHOW(readv(p[0], a, 2));
		printf("  FIONREAD = %d\n", io_nread(p[0]));
		IOSHOW(readv(p[0], b, 2));
		printf("  FIONREAD = %d\n", io_nread(p[0]));
		check_rest(p[0], 0);
		IOSHOW(write(p[1], g_pat, 4096));
		IOSHOW(write(p[1], g_pat + 4096, 20));
		IOSHOW(readv(p[0], b, 2));
		printf("  FIONREAD = %d\n", io_nread(p[0]));
		check_rest(p[0], 4096);
	}
	closep(p);

	CASE("fault_null_and_readonly_buffers");
	io_pipe(p);
	IOSHOW(write(p[1], nul, 10));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	IOSHOW(write(p[1], g_pat, 10));
	IOSHOW(read(p[0], nul, 10));
	pat(ro, 10, 10);
	if (mprotect(ro, PAGE, PROT_READ))
		die("mprotect");
	IOSHOW(read(p[0], ro, 10));
	IOSHOW(read(p[0], none, 10));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	IOSHOW(write(p[1], ro, 10));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	check_rest(p[0], 0);
	closep(p);

	CASE("fault_checked_after_other_errors");
	/* A bad buffer is only found while copying: EOF, EAGAIN, EPIPE and
	 * null transfers come first. */
	io_pipe(p);
	IOSHOW(read(p[0], nul, 0));
	IOSHOW(write(p[1], nul, 0));
	io_set_nonblock(p[0], 1);
	IOSHOW(read(p[0], none, 10));
	io_set_nonblock(p[0], 0);
	io_close(p[1]);
	IOSHOW(read(p[0], none, 10));
	io_close(p[0]);
	io_pipe(p);
	io_close(p[0]);
	IOSHOW(write(p[1], none, 10));
	IOSHOW(write(p[1], nul, 10));
	io_close(p[1]);
	io_pipe(p);
	io_fill(p[1], 4096);
	io_set_nonblock(p[1], 1);
	IOSHOW(write(p[1], none, 10));
	closep(p);

	CASE("fault_direct_packets");
	IOSHOW(pipe2(p, O_DIRECT));
	pat(e100, 0, 100);
	IOSHOW(write(p[1], e100, 300));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	pat(e4196, 0, 4196);
	IOSHOW(write(p[1], e4196, 4396));
	IOSHOW(write(p[1], g_pat, 50));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	IOSHOW(read(p[0], e100, 4096));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	IOSHOW(read(p[0], buf, 8192));
	printf("  whole first packet: %s\n", is_pat(buf, 0, 4096) ? "yes" : "no");
	IOSHOW(read(p[0], e100, 50));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	closep(p);

	CASE("fault_with_sigsegv_and_sigbus_blocked");
	/* The kernel answers EFAULT (a copy fault sends no signal); a user-space copy must not
	 * fault with its fault signals blocked, as that kills. */
	sigset_t faults, old;
	sigemptyset(&faults);
	sigaddset(&faults, SIGSEGV);
	sigaddset(&faults, SIGBUS);
	sigprocmask(SIG_BLOCK, &faults, &old);
	io_pipe(p);
	pat(e4196, 0, 4196);
	IOSHOW(write(p[1], e4196, 4396));
	IOSHOW(write(p[1], none, 10));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	IOSHOW(read(p[0], e100, 4096));
	IOSHOW(read(p[0], none, 10));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	struct iovec iov[2] = { { g_pat, 10 }, { nul, 10 } };
	IOSHOW(writev(p[1], iov, 2));
	int fl[2] = { -1, -1 };
	IOSHOW(pipe((int *)nul));
	IOSHOW(ioctl(p[0], FIONREAD, nul));
	struct pollfd *pf = (struct pollfd *)none;
	IOSHOW(poll(pf, 1, 0));
	(void)fl;
	sigprocmask(SIG_SETMASK, &old, NULL);
	closep(p);

	CASE("fault_in_handler_masking_sigsegv");
	/* The same from a signal handler whose sa_mask holds SIGSEGV. */
	io_pipe(p);
	g_fault_fd = p[1];
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1_fault;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGSEGV);
	sigaction(SIGUSR1, &sa, NULL);
	g_none = none;
	raise(SIGUSR1);
	printf("  in the handler: write = %ld errno %s\n", g_fault_ret, errname_io(g_fault_errno));
	IOSHOW(write(p[1], g_pat, 5));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	closep(p);
	return 0;
}
