/* AF_UNIX socketpair: the types, flags and errors of socket/socketpair, names of an unnamed
 * pair, byte-stream semantics (writes coalesce, reads split), readv/writev, EAGAIN, zero-length
 * transfers, ESPIPE, a full buffer, and transfers woken and carried between processes.
 */
#include "common.h"

static volatile int g_minus1 = -1;

static void show_fdflags(const char *what, int fd)
{
	int fl = fcntl(fd, F_GETFL), fd_fl = fcntl(fd, F_GETFD);
	printf("  %s: O_NONBLOCK=%d O_RDWR=%d FD_CLOEXEC=%d\n", what, !!(fl & O_NONBLOCK),
	       (fl & O_ACCMODE) == O_RDWR, !!(fd_fl & FD_CLOEXEC));
}

int main(void)
{
	sk_setup();
	alarm(20);
	signal(SIGPIPE, SIG_IGN);
	int sv[2];
	char buf[65536];
	long n;
	pid_t pid;

	CASE("pair_types_and_errors");
	{
		static const struct { int type; const char *name; } types[] = {
			{ SOCK_STREAM, "SOCK_STREAM" }, { SOCK_DGRAM, "SOCK_DGRAM" },
			{ SOCK_SEQPACKET, "SOCK_SEQPACKET" }, { SOCK_RAW, "SOCK_RAW" },
			{ SOCK_RDM, "SOCK_RDM" }, { 99, "type 99" },
		};
		for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
			errno = 0;
			int r = socketpair(AF_UNIX, types[i].type, 0, sv);
			printf("  socketpair(AF_UNIX, %s) = %s\n", types[i].name, r ? errname_io(errno) : "0");
			if (!r) {
				int t = -1;
				socklen_t l = sizeof t;
				getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &t, &l);
				printf("    SO_TYPE = %d\n", t);
				closep(sv);
			}
		}
	}
	IOSHOW(socketpair(AF_UNIX, SOCK_STREAM, 1, sv));
	closep(sv);
	IOSHOW(socketpair(AF_UNIX, SOCK_STREAM, 2, sv));
	IOSHOW(socketpair(AF_INET, SOCK_STREAM, 0, sv));
	IOSHOW(socketpair(AF_UNIX, SOCK_STREAM, 0, NULL));
	IOSHOW(socket(AF_UNIX, 99, 0));
	IOSHOW(socket(AF_UNIX, SOCK_STREAM, 7));
	IOSHOW(socket(12345, SOCK_STREAM, 0));

	CASE("pair_flags");
	IOSHOW(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
	show_fdflags("end 0", sv[0]);
	show_fdflags("end 1", sv[1]);
	IOSHOW(read(sv[0], buf, 10));
	IOSHOW(write(sv[1], "x", 1));
	IOSHOW(read(sv[0], buf, 10));
	closep(sv);
	IOSHOW(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv));
	show_fdflags("dgram end 0", sv[0]);
	closep(sv);
	IOSHOW(socketpair(AF_UNIX, SOCK_STREAM | 0x40000000, 0, sv));
	{
		int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0);
		show_fdflags("socket(SOCK_SEQPACKET|SOCK_NONBLOCK)", s);
		io_close(s);
	}

	CASE("pair_fstat_and_names");
	sk_pair(SOCK_STREAM, sv);
	{
		struct stat st;
		if (fstat(sv[0], &st))
			die("fstat");
		printf("  fstat: S_ISSOCK=%d perms=%#o size=%lld nlink=%lu\n", S_ISSOCK(st.st_mode),
		       st.st_mode & 07777, (long long)st.st_size, (unsigned long)st.st_nlink);
	}
	sk_show_names("end 0", sv[0]);
	sk_show_names("end 1", sv[1]);
	{
		struct sockaddr_un a;
		socklen_t len = 1;
		IOSHOW(getsockname(sv[0], (struct sockaddr *)&a, &len));
		printf("  len after a short buffer: %u\n", (unsigned)len);
		IOSHOW(getsockname(0, (struct sockaddr *)&a, &len));
		IOSHOW(getsockname(999, (struct sockaddr *)&a, &len));
	}

	CASE("pair_stream_coalesces_and_splits");
	IOSHOW(write(sv[0], "abc", 3));
	IOSHOW(write(sv[0], "def", 3));
	IOSHOW(write(sv[0], "ghij", 4));
	printf("  FIONREAD = %d\n", io_nread(sv[1]));
	n = IOSHOW(read(sv[1], buf, 4));
	printf("  data \"%.*s\"\n", (int)n, buf);
	n = IOSHOW(read(sv[1], buf, sizeof buf));
	printf("  data \"%.*s\"\n", (int)n, buf);
	IOSHOW(write(sv[1], "back", 4));
	n = IOSHOW(read(sv[0], buf, sizeof buf));
	printf("  other way \"%.*s\"\n", (int)n, buf);

	CASE("pair_readv_writev");
	{
		struct iovec w[3] = { { "one,", 4 }, { "", 0 }, { "two,three", 9 } };
		IOSHOW(writev(sv[0], w, 3));
		char a[5] = { 0 }, b[20] = { 0 };
		struct iovec r[2] = { { a, 3 }, { b, sizeof b } };
		IOSHOW(readv(sv[1], r, 2));
		printf("  a=\"%s\" b=\"%s\"\n", a, b);
		IOSHOW(writev(sv[0], w, 0));
		IOSHOW(writev(sv[0], w, g_minus1));
	}

	CASE("pair_empty_eagain_and_zero_length");
	IOSHOW(recv(sv[1], buf, 10, MSG_DONTWAIT));
	io_set_nonblock(sv[1], 1);
	IOSHOW(read(sv[1], buf, 10));
	io_set_nonblock(sv[1], 0);
	IOSHOW(write(sv[0], buf, 0));
	IOSHOW(send(sv[0], buf, 0, 0));
	printf("  FIONREAD = %d\n", io_nread(sv[1]));
	IOSHOW(recv(sv[1], buf, 10, MSG_DONTWAIT));
	IOSHOW(write(sv[0], "z", 1));
	IOSHOW(read(sv[1], buf, 0));
	IOSHOW(read(sv[1], buf, 10));

	CASE("pair_espipe");
	IOSHOW(lseek(sv[0], 0, SEEK_SET));
	IOSHOW(pread(sv[0], buf, 1, 0));
	IOSHOW(pwrite(sv[0], "x", 1, 0));
	closep(sv);

	CASE("pair_full_buffer");
	sk_pair(SOCK_STREAM, sv);
	/* How much fits is the kernel's skb accounting (README: limitations); that it fills,
	 * and that everything queued is counted and read back, is the semantics. */
	n = io_fill(sv[0], 4096);
	printf("  filled with 4096-byte writes: at least 64 KiB: %s\n", n >= 65536 ? "yes" : "no");
	IOSHOW(send(sv[0], "x", 1, MSG_DONTWAIT));
	printf("  FIONREAD counts them all: %s\n", io_nread(sv[1]) == n ? "yes" : "no");
	printf("  drained them all: %s\n", io_drain(sv[1]) == n ? "yes" : "no");
	IOSHOW(send(sv[0], "x", 1, MSG_DONTWAIT));
	closep(sv);

	CASE("pair_blocked_read_woken_by_other_process");
	sk_pair(SOCK_STREAM, sv);
	if ((pid = io_fork()) == 0) {
		io_close(sv[0]);
		n = read(sv[1], buf, sizeof buf);
		printf("  child: read = %ld \"%.*s\"\n", n, (int)(n > 0 ? n : 0), buf);
		_exit(0);
	}
	io_wait_sleeping(pid);
	n = write(sv[0], "wake up", 7);
	show_status_io("child", io_reap(pid));
	printf("  parent: write = %ld\n", n);
	closep(sv);

	CASE("pair_blocked_writer_woken_by_reader");
	sk_pair(SOCK_STREAM, sv);
	if ((pid = io_fork()) == 0) {
		static char big[300000];
		io_close(sv[1]);
		memset(big, 'b', sizeof big);
		n = write(sv[0], big, sizeof big);
		printf("  child: write = %ld\n", n);
		_exit(0);
	}
	io_wait_sleeping(pid);
	{
		long total = 0, other = 0;
		while (total < 300000 && (n = read(sv[1], buf, sizeof buf)) > 0) {
			for (long i = 0; i < n; i++)
				other += buf[i] != 'b';
			total += n;
		}
		show_status_io("child", io_reap(pid));
		printf("  parent read %ld bytes, %ld not 'b'\n", total, other);
	}
	closep(sv);

	CASE("pair_transfer_between_processes");
	sk_pair(SOCK_STREAM, sv);
	if ((pid = io_fork()) == 0) {
		io_close(sv[0]);
		unsigned char chunk[1000];
		for (int k = 0; k < 1000; k++) {
			for (int i = 0; i < 1000; i++)
				chunk[i] = (unsigned char)(k + i);
			if (write(sv[1], chunk, sizeof chunk) != sizeof chunk)
				_exit(1);
		}
		unsigned sum = 0;
		while ((n = read(sv[1], buf, sizeof buf)) > 0)
			for (long i = 0; i < n; i++)
				sum = sum * 31 + (unsigned char)buf[i];
		printf("  child: read back until EOF, checksum %u\n", sum);
		_exit(0);
	}
	io_close(sv[1]);
	{
		long total = 0;
		unsigned sum = 0;
		while (total < 1000000 && (n = read(sv[0], buf, sizeof buf)) > 0) {
			for (long i = 0; i < n; i++)
				sum = sum * 31 + (unsigned char)buf[i];
			total += n;
		}
		printf("  parent: %ld bytes, checksum %u\n", total, sum);
		for (int i = 0; i < 100; i++)
			if (write(sv[0], "0123456789", 10) != 10)
				die("write");
		shutdown(sv[0], SHUT_WR);
		show_status_io("child", io_reap(pid));
	}
	io_close(sv[0]);

	CASE("pair_end_shared_across_fork");
	sk_pair(SOCK_STREAM, sv);
	if ((pid = io_fork()) == 0) {
		if (write(sv[0], "from child;", 11) != 11)
			_exit(1);
		_exit(0);
	}
	show_status_io("child", io_reap(pid));
	IOSHOW(write(sv[0], "from parent", 11));
	n = IOSHOW(read(sv[1], buf, sizeof buf));
	printf("  data \"%.*s\"\n", (int)n, buf);
	closep(sv);

	sk_cleanup();
	return 0;
}
