/* splice, tee, sendfile and vmsplice on pipes, served by the shim: pipe to pipe, pipe to and
 * from files, sockets and /dev/null, tee that does not consume, sendfile into a pipe and a
 * socket; partial counts (by length, by the room in the target, by whole buffers), offsets
 * and file positions, end of file, EAGAIN from SPLICE_F_NONBLOCK and O_NONBLOCK, EPIPE with
 * SIGPIPE, blocking until another process writes, signals with and without SA_RESTART, and
 * every argument error in the kernel's order (EINVAL, EBADF, ESPIPE, EFAULT). The slots a
 * splice fills are the kernel's: a later write merges into a buffer moved whole from a pipe,
 * not into one of a file's pages or part of a buffer. */
#include "common.h"
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>

static int g_sigpipes, g_usr1;

static void on_sigpipe(int s)
{
	(void)s;
	g_sigpipes++;
}

static void on_usr1(int s)
{
	(void)s;
	g_usr1++;
}

/* Reads what is queued (non-blocking) and prints it. */
static void drain(const char *what, int fd)
{
	char buf[256];
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	errno = 0;
	ssize_t n = read(fd, buf, sizeof buf);
	fcntl(fd, F_SETFL, fl);
	if (n < 0)
		printf("  %s: read = -1 %s\n", what, errname_io(errno));
	else
		printf("  %s: \"%.*s\"\n", what, (int)n, buf);
}

/* Reads everything queued without waiting; the byte count. */
static long read_all_nb(int fd, char *buf, long cap)
{
	long total = 0, n;
	io_set_nonblock(fd, 1);
	while (total < cap && (n = read(fd, buf + total, cap - total)) > 0)
		total += n;
	io_set_nonblock(fd, 0);
	return total;
}

static void queued(const char *what, int fd)
{
	int n = -1;
	ioctl(fd, FIONREAD, &n);
	printf("  %s: %d queued\n", what, n);
}

static int data_file(const char *name, const char *text)
{
	int f = open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (f < 0 || write(f, text, strlen(text)) != (ssize_t)strlen(text) || lseek(f, 0, SEEK_SET))
		die("data file");
	return f;
}

static void show_pos(const char *what, int fd)
{
	printf("  %s position %ld\n", what, (long)lseek(fd, 0, SEEK_CUR));
}

/* Fills a pipe of one page per slot: n slots of `each` bytes written apart (O_DIRECT makes
 * each write its own buffer). */
static void slots(int fd, int n, int each)
{
	char buf[4096];
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_DIRECT);
	memset(buf, 'a', sizeof buf);
	for (int i = 0; i < n; i++) {
		buf[0] = 'A' + i;
		if (write(fd, buf, each) != each)
			die("slots");
	}
	fcntl(fd, F_SETFL, fl);
}

int main(void)
{
	int p[2], q[2], sv[2];
	char buf[70000];
	long n;
	pid_t pid;
	setup();
	alarm(20);

	CASE("splice_pipe_to_pipe_partial");
	io_pipe(p);
	io_pipe(q);
	IOSHOW(write(p[1], "hello world", 11));
	IOSHOW(splice(p[0], NULL, q[1], NULL, 5, 0));
	drain("spliced", q[0]);
	drain("left", p[0]);
	IOSHOW(write(p[1], "more", 4));
	IOSHOW(splice(p[0], NULL, q[1], NULL, 100, SPLICE_F_MOVE | SPLICE_F_MORE));
	drain("spliced", q[0]);

	CASE("splice_pipe_to_pipe_errors");
	IOSHOW(splice(p[0], NULL, p[1], NULL, 5, 0));
	IOSHOW(splice(q[0], NULL, q[1], NULL, 5, 0));
	IOSHOW(splice(p[1], NULL, q[1], NULL, 5, 0));
	IOSHOW(splice(p[0], NULL, q[0], NULL, 5, 0));
	{
		loff_t off = 0;
		IOSHOW(splice(p[0], &off, q[1], NULL, 5, 0));
		IOSHOW(splice(p[0], NULL, q[1], &off, 5, 0));
	}
	IOSHOW(splice(p[0], NULL, q[1], NULL, 5, 0x10));
	IOSHOW(splice(p[0], NULL, q[1], NULL, 0, 0x10));
	IOSHOW(splice(p[0], NULL, 999, NULL, 5, 0));
	IOSHOW(splice(999, NULL, q[1], NULL, 5, 0));
	IOSHOW(splice(999, NULL, q[1], NULL, 0, 0));
	IOSHOW(splice(p[0], NULL, q[1], NULL, 5, SPLICE_F_NONBLOCK));
	io_set_nonblock(q[1], 1);
	IOSHOW(splice(p[0], NULL, q[1], NULL, 5, 0));
	io_set_nonblock(q[1], 0);

	CASE("splice_pipe_to_pipe_eof_and_epipe");
	io_close(p[1]);
	IOSHOW(splice(p[0], NULL, q[1], NULL, 5, 0));
	IOSHOW(splice(p[0], NULL, q[1], NULL, 5, SPLICE_F_NONBLOCK));
	io_close(p[0]);
	io_pipe(p);
	IOSHOW(write(p[1], "lost?", 5));
	io_close(q[0]);
	io_handler(SIGPIPE, on_sigpipe, 0);
	IOSHOW(splice(p[0], NULL, q[1], NULL, 5, 0));
	printf("  SIGPIPE handled %d time(s)\n", g_sigpipes);
	drain("still queued", p[0]);
	signal(SIGPIPE, SIG_IGN);
	closep(p);
	io_close(q[1]);

	CASE("splice_pipe_to_pipe_room_and_buffers");
	io_pipe(p);
	io_pipe(q);
	slots(p[1], 5, 4096);
	IOSHOW(fcntl(q[1], F_SETPIPE_SZ, 8192));
	IOSHOW(splice(p[0], NULL, q[1], NULL, 100000, 0));
	queued("target", q[0]);
	queued("source", p[0]);
	IOSHOW(splice(p[0], NULL, q[1], NULL, 100000, SPLICE_F_NONBLOCK));
	/* Packets (O_DIRECT) moved whole stay packets: one read each. */
	n = IOSHOW(read(q[0], buf, sizeof buf));
	printf("  first byte %c\n", buf[0]);
	n = IOSHOW(read(q[0], buf, sizeof buf));
	printf("  first byte %c\n", buf[0]);
	closep(p);
	closep(q);

	CASE("splice_whole_buffer_takes_merges");
	io_pipe(p);
	io_pipe(q);
	IOSHOW(fcntl(q[1], F_SETPIPE_SZ, 8192));
	IOSHOW(write(p[1], "small", 5));
	IOSHOW(splice(p[0], NULL, q[1], NULL, 100, 0));
	io_set_nonblock(q[1], 1);
	memset(buf, 'm', 5000);
	IOSHOW(write(q[1], buf, 5000));
	closep(p);
	closep(q);

	CASE("splice_part_of_a_buffer_takes_no_merges");
	io_pipe(p);
	io_pipe(q);
	IOSHOW(fcntl(q[1], F_SETPIPE_SZ, 8192));
	IOSHOW(write(p[1], "small buffer", 12));
	IOSHOW(splice(p[0], NULL, q[1], NULL, 5, 0));
	io_set_nonblock(q[1], 1);
	IOSHOW(write(q[1], buf, 5000));
	drain("rest of source", p[0]);
	closep(p);
	closep(q);

	CASE("splice_file_to_pipe");
	{
		int f = data_file("data", "0123456789abcdef");
		loff_t off = 4;
		io_pipe(p);
		IOSHOW(splice(f, &off, p[1], NULL, 6, 0));
		printf("  offset now %ld\n", (long)off);
		show_pos("file", f);
		drain("spliced", p[0]);
		IOSHOW(splice(f, NULL, p[1], NULL, 3, 0));
		show_pos("file", f);
		IOSHOW(splice(f, NULL, p[1], NULL, 100, 0));
		show_pos("file", f);
		drain("spliced", p[0]);
		IOSHOW(splice(f, NULL, p[1], NULL, 100, 0));
		off = 100;
		IOSHOW(splice(f, &off, p[1], NULL, 100, 0));
		off = -1;
		IOSHOW(splice(f, &off, p[1], NULL, 100, 0));
		IOSHOW(splice(f, (loff_t *)8, p[1], NULL, 100, 0));
		/* The buffer takes no merge: a write starts a slot of its own. */
		IOSHOW(fcntl(p[1], F_SETPIPE_SZ, 8192));
		off = 0;
		IOSHOW(splice(f, &off, p[1], NULL, 10, 0));
		io_set_nonblock(p[1], 1);
		IOSHOW(write(p[1], buf, 5000));
		closep(p);
		io_close(f);
	}

	CASE("splice_file_to_pipe_by_pages");
	{
		int f = open("big", O_RDWR | O_CREAT | O_TRUNC, 0600);
		for (int i = 0; i < (int)sizeof buf; i++)
			buf[i] = 'a' + i % 26;
		if (f < 0 || write(f, buf, sizeof buf) != sizeof buf)
			die("big file");
		io_pipe(p);
		loff_t off = 100;
		/* 16 slots from an offset inside a page: the first buffer ends at the page's end. */
		IOSHOW(splice(f, &off, p[1], NULL, 100000, 0));
		printf("  offset now %ld\n", (long)off);
		n = read_all_nb(p[0], buf, sizeof buf);
		printf("  read back %ld bytes, first '%c'\n", n, buf[0]);
		closep(p);
		io_close(f);
	}

	CASE("splice_pipe_to_file");
	{
		int f = data_file("out", "");
		loff_t off = 3;
		io_pipe(p);
		IOSHOW(write(p[1], "abcdefgh", 8));
		IOSHOW(splice(p[0], NULL, f, &off, 4, 0));
		printf("  offset now %ld\n", (long)off);
		show_pos("file", f);
		IOSHOW(splice(p[0], NULL, f, NULL, 100, 0));
		show_pos("file", f);
		n = pread(f, buf, sizeof buf, 0);
		printf("  file holds %ld bytes: \"%.*s\"\n", n, (int)(n > 3 ? n - 3 : 0), buf + 3);
		IOSHOW(splice(p[0], NULL, f, NULL, 100, SPLICE_F_NONBLOCK));
		IOSHOW(write(p[1], "x", 1));
		IOSHOW(splice(p[0], NULL, f, (loff_t *)8, 100, 0));
		off = -5;
		IOSHOW(splice(p[0], NULL, f, &off, 100, 0));
		int a = open("out", O_WRONLY | O_APPEND);
		IOSHOW(splice(p[0], NULL, a, NULL, 100, 0));
		int ro = open("out", O_RDONLY);
		IOSHOW(splice(p[0], NULL, ro, NULL, 100, 0));
		IOSHOW(splice(f, NULL, ro, NULL, 100, 0));
		drain("still queued", p[0]);
		closep(p);
		io_close(a);
		io_close(ro);
		io_close(f);
	}

	CASE("splice_pipe_to_dev_null");
	{
		int nul = open("/dev/null", O_WRONLY);
		io_pipe(p);
		IOSHOW(write(p[1], "into nothing", 12));
		IOSHOW(splice(p[0], NULL, nul, NULL, 100, 0));
		queued("left", p[0]);
		closep(p);
		io_close(nul);
	}

	CASE("splice_pipe_and_socket");
	io_pipe(p);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		die("socketpair");
	IOSHOW(write(p[1], "to a socket", 11));
	IOSHOW(splice(p[0], NULL, sv[0], NULL, 100, SPLICE_F_MORE));
	n = IOSHOW(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT));
	printf("  received \"%.*s\"\n", (int)(n > 0 ? n : 0), buf);
	IOSHOW(send(sv[1], "from a socket", 13, 0));
	IOSHOW(splice(sv[0], NULL, p[1], NULL, 4, 0));
	IOSHOW(splice(sv[0], NULL, p[1], NULL, 100, 0));
	drain("pipe", p[0]);
	IOSHOW(splice(sv[0], NULL, p[1], NULL, 100, SPLICE_F_NONBLOCK));
	io_set_nonblock(sv[0], 1);
	IOSHOW(splice(sv[0], NULL, p[1], NULL, 100, 0));
	io_set_nonblock(sv[0], 0);
	{
		loff_t off = 0;
		IOSHOW(splice(sv[0], &off, p[1], NULL, 100, 0));
		IOSHOW(splice(p[0], NULL, sv[0], &off, 100, 0));
	}
	IOSHOW(splice(sv[0], NULL, sv[1], NULL, 100, 0));
	io_close(sv[1]);
	IOSHOW(splice(sv[0], NULL, p[1], NULL, 100, 0));
	IOSHOW(write(p[1], "x", 1));
	IOSHOW(splice(p[0], NULL, sv[0], NULL, 100, 0));
	printf("  SIGPIPE ignored, EPIPE only\n");
	io_close(sv[0]);
	closep(p);

	CASE("tee_does_not_consume");
	io_pipe(p);
	io_pipe(q);
	IOSHOW(write(p[1], "tee this", 8));
	IOSHOW(tee(p[0], q[1], 3, 0));
	IOSHOW(tee(p[0], q[1], 100, 0));
	drain("copy", q[0]);
	drain("original", p[0]);
	IOSHOW(tee(p[0], q[1], 100, SPLICE_F_NONBLOCK));
	IOSHOW(tee(p[0], q[1], 0, 0));
	IOSHOW(tee(p[0], q[1], 5, 0x10));
	IOSHOW(tee(p[0], q[1], 0, 0x10));
	IOSHOW(tee(999, q[1], 0, 0));
	IOSHOW(tee(p[0], p[1], 5, 0));
	IOSHOW(tee(p[1], q[1], 5, 0));
	IOSHOW(tee(p[0], q[0], 5, 0));
	IOSHOW(tee(p[0], 999, 5, 0));
	{
		int f = data_file("tee", "x");
		IOSHOW(tee(f, q[1], 5, 0));
		IOSHOW(tee(p[0], f, 5, 0));
		io_close(f);
	}
	io_close(p[1]);
	IOSHOW(tee(p[0], q[1], 100, 0));
	io_close(p[0]);
	io_pipe(p);
	IOSHOW(write(p[1], "x", 1));
	io_close(q[0]);
	IOSHOW(tee(p[0], q[1], 100, 0));
	closep(p);
	io_close(q[1]);

	CASE("tee_fills_only_the_room");
	io_pipe(p);
	io_pipe(q);
	slots(p[1], 4, 1000);
	IOSHOW(fcntl(q[1], F_SETPIPE_SZ, 8192));
	IOSHOW(tee(p[0], q[1], 100000, 0));
	queued("copy", q[0]);
	queued("original", p[0]);
	closep(p);
	closep(q);

	CASE("sendfile_into_a_pipe");
	{
		int f = data_file("send", "sendfile data here");
		off_t off = 9;
		io_pipe(p);
		IOSHOW(sendfile(p[1], f, &off, 4));
		printf("  offset now %ld\n", (long)off);
		show_pos("file", f);
		IOSHOW(sendfile(p[1], f, NULL, 8));
		show_pos("file", f);
		drain("pipe", p[0]);
		off = 100;
		IOSHOW(sendfile(p[1], f, &off, 4));
		printf("  offset now %ld\n", (long)off);
		IOSHOW(sendfile(p[1], f, (off_t *)8, 4));
		IOSHOW(sendfile(p[1], f, NULL, 0));
		io_pipe(q);
		IOSHOW(write(q[1], "pipe", 4));
		IOSHOW(sendfile(p[1], q[0], NULL, 4));
		IOSHOW(sendfile(p[1], q[0], &off, 4));
		IOSHOW(sendfile(p[1], p[1], NULL, 4));
		IOSHOW(sendfile(p[0], f, NULL, 4));
		closep(q);
		io_set_nonblock(p[1], 1);
		io_fill(p[1], 4096);
		IOSHOW(sendfile(p[1], f, NULL, 4));
		closep(p);
		io_close(f);
	}

	CASE("sendfile_into_a_socket");
	{
		int f = data_file("sock", "file into a socket");
		off_t off = 5;
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			die("socketpair");
		IOSHOW(sendfile(sv[0], f, &off, 100));
		printf("  offset now %ld\n", (long)off);
		show_pos("file", f);
		n = IOSHOW(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT));
		printf("  received \"%.*s\"\n", (int)(n > 0 ? n : 0), buf);
		IOSHOW(sendfile(sv[0], f, NULL, 4));
		show_pos("file", f);
		n = IOSHOW(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT));
		printf("  received \"%.*s\"\n", (int)(n > 0 ? n : 0), buf);
		io_pipe(p);
		IOSHOW(sendfile(sv[0], p[0], NULL, 4));
		/* From a socket into a pipe: the socket's splice_read. */
		IOSHOW(send(sv[0], "sock data", 9, 0));
		IOSHOW(sendfile(p[1], sv[1], NULL, 4));
		drain("pipe", p[0]);
		IOSHOW(sendfile(p[1], sv[1], &off, 4));
		io_set_nonblock(sv[1], 1);
		IOSHOW(sendfile(p[1], sv[1], NULL, 100));
		IOSHOW(sendfile(p[1], sv[1], NULL, 100));
		drain("pipe", p[0]);
		closep(p);
		io_close(sv[1]);
		IOSHOW(sendfile(sv[0], f, NULL, 4));
		io_close(sv[0]);
		io_close(f);
	}

	CASE("vmsplice");
	io_pipe(p);
	{
		struct iovec iov = { "gift", 4 };
		IOSHOW(vmsplice(p[1], &iov, 1, SPLICE_F_GIFT));
		IOSHOW(vmsplice(p[1], &iov, 1, 0x10));
		char out[8];
		struct iovec ov = { out, sizeof out };
		n = IOSHOW(vmsplice(p[0], &ov, 1, 0));
		printf("  read \"%.*s\"\n", (int)(n > 0 ? n : 0), out);
	}
	closep(p);

	CASE("splice_blocks_until_a_writer_writes");
	io_pipe(p);
	io_pipe(q);
	if ((pid = io_fork()) == 0) {
		io_close(q[0]);
		n = splice(p[0], NULL, q[1], NULL, 100, 0);
		_exit(n == 7 ? 0 : 1);
	}
	io_wait_sleeping(pid);
	IOSHOW(write(p[1], "woke up", 7));
	show_status_io("splicer", io_reap(pid));
	drain("target", q[0]);
	closep(p);
	closep(q);

	CASE("splice_waits_for_room_then_moves");
	io_pipe(p);
	io_pipe(q);
	IOSHOW(fcntl(q[1], F_SETPIPE_SZ, 4096));
	slots(q[1], 1, 4096);
	IOSHOW(write(p[1], "waiting", 7));
	if ((pid = io_fork()) == 0) {
		n = splice(p[0], NULL, q[1], NULL, 100, 0);
		_exit(n == 7 ? 0 : 1);
	}
	io_wait_sleeping(pid);
	n = IOSHOW(read(q[0], buf, 4096));
	show_status_io("splicer", io_reap(pid));
	drain("target", q[0]);
	closep(p);
	closep(q);

	CASE("splice_signals");
	io_pipe(p);
	io_pipe(q);
	{
		int ack[2];
		io_pipe(ack);
		io_handler(SIGUSR1, on_usr1, 0);
		pid_t me = getpid();
		if ((pid = io_fork()) == 0) {
			io_signal_until(me, SIGUSR1, ack[0]);
			_exit(0);
		}
		IOSHOW(splice(p[0], NULL, q[1], NULL, 100, 0));
		io_post(ack[1]);
		io_reap(pid);
		printf("  handler ran: %s\n", g_usr1 > 0 ? "yes" : "no");
		io_handler(SIGUSR1, on_usr1, SA_RESTART);
		g_usr1 = 0;
		if ((pid = io_fork()) == 0) {
			io_signal_until(me, SIGUSR1, ack[0]);
			if (write(p[1], "restarted", 9) != 9)
				_exit(1);
			_exit(0);
		}
		n = IOSHOW(splice(p[0], NULL, q[1], NULL, 100, 0));
		io_post(ack[1]);
		io_reap(pid);
		printf("  handler ran: %s\n", g_usr1 > 0 ? "yes" : "no");
		drain("target", q[0]);
		closep(ack);
	}
	closep(p);
	closep(q);

	CASE("splice_a_stream_between_processes");
	io_pipe(p);
	io_pipe(q);
	{
		pid_t writer, splicer;
		if ((writer = io_fork()) == 0) {
			io_close(p[0]);
			io_close(q[0]);
			io_close(q[1]);
			for (int i = 0; i < 300; i++) {
				memset(buf, 'a' + i % 26, 1000 + i);
				if (write(p[1], buf, 1000 + i) != 1000 + i)
					_exit(1);
			}
			_exit(0);
		}
		io_close(p[1]);
		if ((splicer = io_fork()) == 0) {
			io_close(q[0]);
			while ((n = splice(p[0], NULL, q[1], NULL, 65536, 0)) > 0)
				;
			_exit(n == 0 ? 0 : 1);
		}
		io_close(p[0]);
		io_close(q[1]);
		long total = 0;
		unsigned sum = 0;
		while ((n = read(q[0], buf, sizeof buf)) > 0) {
			for (long i = 0; i < n; i++)
				sum = sum * 31 + (unsigned char)buf[i];
			total += n;
		}
		printf("  %ld bytes, checksum %u\n", total, sum);
		show_status_io("writer", io_reap(writer));
		show_status_io("splicer", io_reap(splicer));
		io_close(q[0]);
	}
	return 0;
}
