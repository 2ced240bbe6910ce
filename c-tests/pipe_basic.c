/* Pipes in one process: read/write, readv/writev, EOF, EAGAIN, zero-length
 * transfers, the wrong end, ESPIPE, fstat, FIONREAD and other ioctls. */
#include "common.h"

static int g_sigpipes;
/* Out of the compiler's sight, so it does not reject the calls that use them. */
static volatile int g_minus1 = -1;
static volatile size_t g_huge = (size_t)-1, g_ssize_max = SSIZE_MAX;

static void on_sigpipe(int sig)
{
	(void)sig;
	g_sigpipes++;
}

static void show_buf(const char *what, const char *buf, long n)
{
	if (n < 0)
		return;
	printf("  %s: \"%.*s\"\n", what, (int)n, buf);
}

static void show_stat(const char *what, int fd)
{
	struct stat st;
	if (fstat(fd, &st)) {
		printf("  fstat %s = -1 %s\n", what, errname_io(errno));
		return;
	}
	printf("  fstat %s: mode=%#o size=%lld nlink=%lu uid=%u gid=%u blksize=%ld blocks=%lld "
	       "rdev=%lu atime=%s mtime=%s ctime=%s\n",
	       what, st.st_mode, (long long)st.st_size, (unsigned long)st.st_nlink,
	       st.st_uid, st.st_gid, (long)st.st_blksize, (long long)st.st_blocks,
	       (unsigned long)st.st_rdev, trel(st.st_atime), trel(st.st_mtime),
	       trel(st.st_ctime));
}

int main(void)
{
	setup();
	alarm(10);
	int p[2], q[2], a, b;
	char buf[256];
	long n;
	struct stat s1, s2, s3;

	CASE("basic_lowest_free_fds");
	a = dup(1);
	b = dup(1);
	if (a < 0 || b < 0)
		die("dup");
	io_close(a);
	io_close(b);
	IOSHOW(pipe(p));
	printf("  read end is the lowest free fd: %s, write end the next: %s\n",
	       p[0] == a ? "yes" : "no", p[1] == b ? "yes" : "no");

	CASE("basic_write_read_partial");
	IOSHOW(write(p[1], "hello", 5));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	n = IOSHOW(read(p[0], buf, 100));
	show_buf("read", buf, n);
	IOSHOW(write(p[1], "0123456789", 10));
	n = IOSHOW(read(p[0], buf, 3));
	show_buf("read", buf, n);
	n = IOSHOW(read(p[0], buf, 3));
	show_buf("read", buf, n);
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	n = IOSHOW(read(p[0], buf, 100));
	show_buf("read", buf, n);

	CASE("basic_read_spans_writes");
	IOSHOW(write(p[1], "abc", 3));
	IOSHOW(write(p[1], "def", 3));
	IOSHOW(write(p[1], "", 0));
	IOSHOW(write(p[1], "ghi", 3));
	n = IOSHOW(read(p[0], buf, sizeof buf));
	show_buf("read", buf, n);

	CASE("basic_eagain_empty_nonblocking");
	io_set_nonblock(p[0], 1);
	IOSHOW(read(p[0], buf, sizeof buf));
	IOSHOW(read(p[0], buf, 1));
	io_set_nonblock(p[0], 0);

	CASE("basic_zero_length");
	/* Null reads and writes succeed before anything else is looked at. */
	IOSHOW(read(p[0], buf, 0));
	IOSHOW(write(p[1], buf, 0));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	{
		char *volatile nul = NULL;
		IOSHOW(read(p[0], nul, 0));
		IOSHOW(write(p[1], nul, 0));
	}
	IOSHOW(write(p[1], "x", 1));
	IOSHOW(read(p[0], buf, 0));
	printf("  FIONREAD = %d\n", io_nread(p[0]));
	IOSHOW(read(p[0], buf, 1));

	CASE("basic_wrong_end");
	IOSHOW(read(p[1], buf, 1));
	IOSHOW(write(p[0], "x", 1));
	IOSHOW(read(p[1], buf, 0));
	IOSHOW(write(p[0], "x", 0));

	CASE("basic_eof_after_data");
	IOSHOW(write(p[1], "tail", 4));
	io_close(p[1]);
	n = IOSHOW(read(p[0], buf, sizeof buf));
	show_buf("read", buf, n);
	IOSHOW(read(p[0], buf, sizeof buf));
	IOSHOW(read(p[0], buf, sizeof buf));
	io_set_nonblock(p[0], 1);
	IOSHOW(read(p[0], buf, sizeof buf));
	io_close(p[0]);

	CASE("basic_epipe_sigpipe_handler");
	io_handler(SIGPIPE, on_sigpipe, 0);
	io_pipe(p);
	io_close(p[0]);
	IOSHOW(write(p[1], "x", 1));
	printf("  SIGPIPE handled %d time(s)\n", g_sigpipes);
	IOSHOW(write(p[1], "xy", 0));
	printf("  after zero-length write: SIGPIPE handled %d time(s)\n", g_sigpipes);
	{
		struct iovec iov = { "abc", 3 };
		IOSHOW(writev(p[1], &iov, 1));
	}
	printf("  SIGPIPE handled %d time(s)\n", g_sigpipes);
	io_close(p[1]);
	signal(SIGPIPE, SIG_DFL);

	CASE("basic_espipe");
	io_pipe(p);
	IOSHOW(write(p[1], "data", 4));
	IOSHOW(lseek(p[0], 0, SEEK_SET));
	IOSHOW(lseek(p[0], 0, SEEK_CUR));
	IOSHOW(lseek(p[1], 0, SEEK_END));
	IOSHOW(lseek(p[1], 1, SEEK_CUR));
	IOSHOW(pread(p[0], buf, 4, 0));
	IOSHOW(pwrite(p[1], "x", 1, 0));
	IOSHOW(pread(p[0], buf, 0, 0));
	{
		struct iovec iov = { buf, 4 };
		IOSHOW(preadv(p[0], &iov, 1, 0));
		IOSHOW(pwritev(p[1], &iov, 1, 0));
	}
	printf("  FIONREAD = %d\n", io_nread(p[0]));

	CASE("basic_fstat");
	show_stat("read end", p[0]);
	show_stat("write end", p[1]);
	io_pipe(q);
	if (fstat(p[0], &s1) || fstat(p[1], &s2) || fstat(q[0], &s3))
		die("fstat");
	printf("  ends share st_ino: %s, st_dev: %s; other pipe same ino: %s, same dev: %s\n",
	       s1.st_ino == s2.st_ino ? "yes" : "no", s1.st_dev == s2.st_dev ? "yes" : "no",
	       s1.st_ino == s3.st_ino ? "yes" : "no", s1.st_dev == s3.st_dev ? "yes" : "no");
	{
		char path[64], link[64], want[64];
		snprintf(path, sizeof path, "/proc/self/fd/%d", p[1]);
		ssize_t l = readlink(path, link, sizeof link - 1);
		link[l < 0 ? 0 : l] = 0;
		snprintf(want, sizeof want, "pipe:[%lu]", (unsigned long)s1.st_ino);
		printf("  /proc/self/fd link is pipe:[st_ino]: %s\n", strcmp(link, want) ? "no" : "yes");
	}
	io_close(q[0]);
	io_close(q[1]);

	CASE("basic_fionread_both_ends");
	printf("  FIONREAD read end = %d, write end = %d\n", io_nread(p[0]), io_nread(p[1]));
	IOSHOW(read(p[0], buf, 1));
	printf("  FIONREAD read end = %d, write end = %d\n", io_nread(p[0]), io_nread(p[1]));
	io_close(p[0]);
	printf("  reader closed: FIONREAD write end = %d\n", io_nread(p[1]));
	io_close(p[1]);

	CASE("basic_other_ioctls");
	io_pipe(p);
	{
		struct termios_like { char b[64]; } t;
		int one = 1, zero = 0;
		IOSHOW(ioctl(p[0], TCGETS, &t));
		IOSHOW(isatty(p[0]));
		printf("  errno after isatty = %s\n", errname_io(errno));
		IOSHOW(ioctl(p[1], FIOQSIZE, &t));
		IOSHOW(ioctl(p[0], FIONBIO, &one));
		printf("  F_GETFL read end = %#x\n", fcntl(p[0], F_GETFL));
		IOSHOW(read(p[0], buf, 1));
		IOSHOW(ioctl(p[0], FIONBIO, &zero));
		printf("  F_GETFL read end = %#x\n", fcntl(p[0], F_GETFL));
		IOSHOW(ioctl(p[1], FIOCLEX));
		printf("  F_GETFD write end = %d\n", fcntl(p[1], F_GETFD));
		IOSHOW(ioctl(p[1], FIONCLEX));
		printf("  F_GETFD write end = %d\n", fcntl(p[1], F_GETFD));
		IOSHOW(ioctl(p[0], FIONREAD, (int *)8));
	}

	CASE("basic_readv_writev");
	{
		struct iovec w[4] = { { "ab", 2 }, { "zz", 0 }, { "cdef", 4 }, { NULL, 0 } };
		char r1[2], r2[1], r3[3], r4[10];
		struct iovec r[5] = { { r1, 2 }, { r2, 0 }, { r3, 3 }, { NULL, 0 }, { r4, 10 } };
		IOSHOW(writev(p[1], w, 4));
		n = IOSHOW(readv(p[0], r, 5));
		printf("  r1=\"%.2s\" r3=\"%.3s\" r4=\"%.*s\"\n", r1, r3, (int)(n > 5 ? n - 5 : 0), r4);
		IOSHOW(writev(p[1], w, 0));
		io_set_nonblock(p[0], 1);
		struct iovec z[2] = { { buf, 0 }, { NULL, 0 } };
		IOSHOW(readv(p[0], z, 2));
		IOSHOW(readv(p[0], r, 0));
		IOSHOW(readv(p[0], r, 5));
		io_set_nonblock(p[0], 0);
	}

	CASE("basic_iov_limits");
	{
		static struct iovec many[IOV_MAX + 1];
		static char bytes[IOV_MAX + 1];
		for (int i = 0; i <= IOV_MAX; i++) {
			bytes[i] = 'a' + i % 26;
			many[i].iov_base = bytes + i;
			many[i].iov_len = 1;
		}
		IOSHOW(writev(p[1], many, IOV_MAX + 1));
		IOSHOW(writev(p[1], many, g_minus1));
		IOSHOW(writev(p[1], many, IOV_MAX));
		printf("  FIONREAD = %d\n", io_nread(p[0]));
		IOSHOW(readv(p[0], many, IOV_MAX + 1));
		memset(bytes, 0, sizeof bytes);
		n = IOSHOW(readv(p[0], many, IOV_MAX));
		int ok = 1;
		for (int i = 0; i < IOV_MAX; i++)
			ok &= bytes[i] == 'a' + i % 26;
		printf("  bytes in order: %s\n", ok ? "yes" : "no");
	}

	CASE("basic_iov_huge_lengths");
	{
		struct iovec neg[2] = { { buf, 1 }, { buf, (size_t)-1 } };
		struct iovec big[2] = { { buf, 1 }, { buf, (size_t)SSIZE_MAX } };
		struct iovec two[2] = { { buf, (size_t)SSIZE_MAX / 2 + 1 }, { buf, (size_t)SSIZE_MAX / 2 + 1 } };
		IOSHOW(writev(p[1], neg, 2));
		IOSHOW(writev(p[1], big, 2));
		IOSHOW(writev(p[1], two, 2));
		IOSHOW(readv(p[0], neg, 2));
		IOSHOW(readv(p[0], big, 2));
		IOSHOW(write(p[1], buf, g_huge));
		IOSHOW(read(p[0], buf, g_huge));
		IOSHOW(write(p[1], buf, g_ssize_max));
		printf("  FIONREAD = %d\n", io_nread(p[0]));
	}
	io_close(p[0]);
	io_close(p[1]);
	return 0;
}
