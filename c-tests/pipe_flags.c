/* pipe2 flags, O_DIRECT packet mode, and how much a pipe accepts before a
 * non-blocking write gets EAGAIN: capacity counts page slots, not bytes. */
#include "common.h"

static volatile int g_flags_all = -1;

static void show_fl(const char *what, int fd)
{
	printf("  %s: F_GETFL=%#x F_GETFD=%d\n", what, fcntl(fd, F_GETFL), fcntl(fd, F_GETFD));
}

static void show_buf(const char *what, const char *buf, long n)
{
	if (n >= 0)
		printf("  %s: \"%.*s\"\n", what, (int)n, buf);
}

/* The lowest free fd, without keeping it. */
static int lowest_free(void)
{
	int fd = dup(1);
	if (fd < 0)
		die("dup");
	io_close(fd);
	return fd;
}

int main(void)
{
	setup();
	alarm(10);
	int p[2], lo;
	char buf[8192], big[100000];
	long n;
	memset(big, 'b', sizeof big);

	CASE("flags_pipe_default");
	IOSHOW(pipe(p));
	show_fl("read end", p[0]);
	show_fl("write end", p[1]);
	closep(p);
	IOSHOW(pipe2(p, 0));
	show_fl("read end", p[0]);
	show_fl("write end", p[1]);
	closep(p);

	CASE("flags_pipe2_cloexec");
	IOSHOW(pipe2(p, O_CLOEXEC));
	show_fl("read end", p[0]);
	show_fl("write end", p[1]);
	closep(p);

	CASE("flags_pipe2_nonblock");
	IOSHOW(pipe2(p, O_NONBLOCK | O_CLOEXEC));
	show_fl("read end", p[0]);
	show_fl("write end", p[1]);
	IOSHOW(read(p[0], buf, 1));
	/* Two file descriptions: clearing one end leaves the other. */
	IOSHOW(fcntl(p[0], F_SETFL, 0));
	show_fl("read end", p[0]);
	show_fl("write end", p[1]);
	closep(p);

	CASE("flags_pipe2_invalid");
	lo = lowest_free();
	p[0] = p[1] = -7;
	IOSHOW(pipe2(p, O_RDWR));
	IOSHOW(pipe2(p, O_WRONLY));
	IOSHOW(pipe2(p, O_APPEND));
	IOSHOW(pipe2(p, O_ASYNC));
	IOSHOW(pipe2(p, O_TRUNC));
	IOSHOW(pipe2(p, O_CREAT));
	IOSHOW(pipe2(p, O_NOCTTY));
	IOSHOW(pipe2(p, O_SYNC));
	IOSHOW(pipe2(p, 0x8000)); /* the kernel's O_LARGEFILE */
	IOSHOW(pipe2(p, O_NONBLOCK | O_RDWR));
	IOSHOW(pipe2(p, g_flags_all));
	printf("  array untouched: %s, lowest free fd unchanged: %s\n",
	       p[0] == -7 && p[1] == -7 ? "yes" : "no", lowest_free() == lo ? "yes" : "no");

	CASE("flags_pipe2_efault");
	{
		char *none = io_edge(0);
		char *ro = io_edge(PAGE);
		char *edge = io_edge(sizeof(int));
		int *volatile nul = NULL;
		if (mprotect(ro, PAGE, PROT_READ))
			die("mprotect");
		lo = lowest_free();
		IOSHOW(pipe2((int *)none, 0));
		IOSHOW(pipe2((int *)ro, O_CLOEXEC));
		IOSHOW(pipe2((int *)edge, 0));
		IOSHOW(pipe2(nul, 0));
		IOSHOW(pipe(nul));
		IOSHOW(pipe2((int *)none, O_RDWR));
		printf("  lowest free fd unchanged: %s\n", lowest_free() == lo ? "yes" : "no");
	}

	CASE("flags_direct_packets");
	IOSHOW(pipe2(p, O_DIRECT));
	show_fl("read end", p[0]);
	show_fl("write end", p[1]);
	IOSHOW(write(p[1], "one", 3));
	IOSHOW(write(p[1], "three", 5));
	IOSHOW(write(p[1], "four", 4));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	n = IOSHOW(read(p[0], buf, 100));
	show_buf("read", buf, n);
	/* A short read drops the rest of the packet. */
	n = IOSHOW(read(p[0], buf, 2));
	show_buf("read", buf, n);
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	n = IOSHOW(read(p[0], buf, 100));
	show_buf("read", buf, n);

	CASE("flags_direct_split_pages");
	IOSHOW(write(p[1], big, 5000));
	IOSHOW(write(p[1], big, 4096));
	IOSHOW(write(p[1], big, 8193));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	for (int i = 0; i < 6; i++) {
		io_set_nonblock(p[0], 1);
		IOSHOW(read(p[0], buf, sizeof buf));
		io_set_nonblock(p[0], 0);
	}

	CASE("flags_direct_readv");
	IOSHOW(write(p[1], "0123456789", 10));
	IOSHOW(write(p[1], "abcdefghij", 10));
	{
		char a[3], b[3], c[100];
		struct iovec iv[3] = { { a, 3 }, { b, 3 }, { c, 100 } };
		n = IOSHOW(readv(p[0], iv, 3));
		printf("  a=\"%.3s\" b=\"%.3s\" c=\"%.*s\"\n", a, b, (int)(n > 6 ? n - 6 : 0), c);
		n = IOSHOW(readv(p[0], iv, 2));
		printf("  a=\"%.3s\" b=\"%.3s\"\n", a, b);
		printf("  FIONREAD = %d\n", io_nread(p[0]));
	}

	CASE("flags_direct_zero_and_writev");
	IOSHOW(write(p[1], buf, 0));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	{
		struct iovec iv[3] = { { "ab", 2 }, { "", 0 }, { "cde", 3 } };
		IOSHOW(writev(p[1], iv, 3));
	}
	IOSHOW(write(p[1], "fg", 2));
	n = IOSHOW(read(p[0], buf, 100));
	show_buf("read", buf, n);
	n = IOSHOW(read(p[0], buf, 100));
	show_buf("read", buf, n);
	io_set_nonblock(p[0], 1);
	IOSHOW(read(p[0], buf, 100));
	io_set_nonblock(p[0], 0);

	CASE("flags_direct_capacity");
	printf("  1-byte packets accepted: %ld\n", io_fill(p[1], 1));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	n = IOSHOW(read(p[0], buf, 100));
	printf("  drained: %ld\n", io_drain(p[0]));

	CASE("flags_direct_toggle");
	/* Clearing O_DIRECT on the write end makes later writes stream. */
	IOSHOW(fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) & ~O_DIRECT));
	show_fl("write end", p[1]);
	IOSHOW(write(p[1], "ab", 2));
	IOSHOW(write(p[1], "cd", 2));
	n = IOSHOW(read(p[0], buf, 3));
	show_buf("read", buf, n);
	n = IOSHOW(read(p[0], buf, 100));
	show_buf("read", buf, n);
	IOSHOW(fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) | O_DIRECT));
	show_fl("write end", p[1]);
	IOSHOW(fcntl(p[0], F_SETFL, O_DIRECT));
	show_fl("read end", p[0]);
	closep(p);

	CASE("flags_direct_after_stream");
	/* O_DIRECT set while stream data is queued: the packet merges into
	 * the stream page, which is still mergeable. */
	IOSHOW(pipe2(p, O_DIRECT | O_NONBLOCK));
	IOSHOW(fcntl(p[1], F_SETFL, 0));
	IOSHOW(write(p[1], "abc", 3));
	IOSHOW(fcntl(p[1], F_SETFL, O_DIRECT));
	show_fl("write end", p[1]);
	IOSHOW(write(p[1], "defgh", 5));
	IOSHOW(write(p[1], "ijk", 3));
	n = IOSHOW(read(p[0], buf, 4));
	show_buf("read", buf, n);
	n = IOSHOW(read(p[0], buf, 100));
	show_buf("read", buf, n);
	IOSHOW(read(p[0], buf, 100));
	/* Once empty, packets again. */
	IOSHOW(write(p[1], "lmn", 3));
	IOSHOW(write(p[1], "op", 2));
	n = IOSHOW(read(p[0], buf, 100));
	show_buf("read", buf, n);
	/* A stream write behind a packet starts a page of its own. */
	IOSHOW(fcntl(p[1], F_SETFL, 0));
	IOSHOW(write(p[1], "qr", 2));
	n = IOSHOW(read(p[0], buf, 100));
	show_buf("read", buf, n);
	n = IOSHOW(read(p[0], buf, 100));
	show_buf("read", buf, n);
	closep(p);

	CASE("flags_capacity_by_write_size");
	{
		static const size_t sizes[] = { 1, 100, 1000, 4095, 4096, 4097, 5000, 65536, 100000 };
		for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
			io_pipe(p);
			long got = io_fill(p[1], sizes[i]);
			printf("  %zu-byte writes: %ld bytes accepted, FIONREAD=%d\n", sizes[i], got,
			       io_nread(p[0]));
			closep(p);
		}
	}

	CASE("flags_full_nonblocking");
	IOSHOW(pipe2(p, O_NONBLOCK));
	for (int i = 0; i < 15; i++)
		if (write(p[1], big, 4096) != 4096)
			die("write");
	/* More than PIPE_BUF: partial; up to PIPE_BUF: all or EAGAIN. */
	IOSHOW(write(p[1], big, 8192));
	IOSHOW(write(p[1], big, 4096));
	IOSHOW(write(p[1], big, 1));
	IOSHOW(write(p[1], big, 8192));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	closep(p);

	CASE("flags_space_in_last_page");
	IOSHOW(pipe2(p, O_NONBLOCK));
	for (int i = 0; i < 15; i++)
		if (write(p[1], big, 4096) != 4096)
			die("write");
	IOSHOW(write(p[1], big, 10));
	/* 16 slots used: only what fits in the last page is accepted. */
	IOSHOW(write(p[1], big, 4087));
	IOSHOW(write(p[1], big, 4086));
	IOSHOW(write(p[1], big, 1));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	closep(p);

	CASE("flags_read_frees_slot");
	IOSHOW(pipe2(p, O_NONBLOCK));
	printf("  filled with 4096-byte writes: %ld\n", io_fill(p[1], 4096));
	IOSHOW(read(p[0], buf, 1));
	IOSHOW(write(p[1], big, 1));
	IOSHOW(read(p[0], buf, 4094));
	IOSHOW(write(p[1], big, 1));
	IOSHOW(read(p[0], buf, 1));
	IOSHOW(write(p[1], big, 4096));
	IOSHOW(write(p[1], big, 1));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	closep(p);

	CASE("flags_large_write_empty_pipe");
	IOSHOW(pipe2(p, O_NONBLOCK));
	IOSHOW(write(p[1], big, 65537));
	IOSHOW(write(p[1], big, 1));
	printf("  drained: %ld\n", io_drain(p[0]));
	IOSHOW(write(p[1], big, 100));
	IOSHOW(write(p[1], big, sizeof big));
	printf("  drained: %ld\n", io_drain(p[0]));
	closep(p);
	return 0;
}
