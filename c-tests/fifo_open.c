/* FIFOs: mkfifo/mknod, open rules (O_NONBLOCK reader always, O_NONBLOCK
 * writer ENXIO without a reader, blocking opens wait for the other side,
 * O_RDWR never blocks), EOF and POLLHUP per opener, data lifetime, open
 * flags on an existing FIFO, signals during a blocking open. FIFOs live in
 * a mkdtemp directory under /dev/shm, removed at the end. */
#include "common.h"
#include <sys/sysmacros.h>

static char g_dir[64];
static volatile int g_usr1, g_notify = -1;

static void on_usr1(int sig)
{
	(void)sig;
	int e = errno;
	g_usr1++;
	if (g_notify >= 0 && write(g_notify, "n", 1) != 1)
		_exit(3);
	errno = e;
}

static const char *path(const char *name)
{
	static char buf[4][128];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s/%s", g_dir, name);
	return buf[i];
}

static void show_stat(const char *what, const char *p)
{
	struct stat st;
	if (stat(p, &st)) {
		printf("  stat %s = -1 %s\n", what, errname_io(errno));
		return;
	}
	printf("  stat %s: mode=%#o size=%lld nlink=%lu uid=%u rdev=%lu\n", what, st.st_mode,
	       (long long)st.st_size, (unsigned long)st.st_nlink, st.st_uid,
	       (unsigned long)st.st_rdev);
}

static void show_fl(const char *what, int fd)
{
	printf("  %s: F_GETFL=%#x\n", what, fcntl(fd, F_GETFL));
}

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
		printf("  read %s = %ld \"%.*s\"\n", what, r, (int)r, buf);
}

static int xopen(const char *p, int flags)
{
	int fd = open(p, flags);
	if (fd < 0)
		die("open");
	return fd;
}

static void nobody_open(void *arg)
{
	(void)arg;
	FDSHOW(open(path("f"), O_RDWR | O_NONBLOCK));
	FDSHOW(open(path("f"), O_RDONLY | O_NONBLOCK));
	FDSHOW(open(path("open"), O_RDWR | O_NONBLOCK));
}

int main(void)
{
	setup();
	alarm(10);
	signal(SIGPIPE, SIG_IGN);
	strcpy(g_dir, "/dev/shm/fifo-XXXXXX");
	if (!mkdtemp(g_dir))
		die("mkdtemp");
	int r, w, r2, fd;
	pid_t pid, parent = getpid();
	char buf[4096];
	static char big[200000];
	long n;

	CASE("fifo_mkfifo");
	umask(022);
	IOSHOW(mkfifo(path("f"), 0666));
	show_stat("f", path("f"));
	IOSHOW(mkfifo(path("f"), 0600));
	IOSHOW(mkfifo(path("missing/f"), 0600));
	IOSHOW(mkfifo(path("other"), 07777));
	show_stat("other", path("other"));
	IOSHOW(unlink(path("other")));

	CASE("fifo_nonblock_reader_without_writer");
	r = FDSHOW(open(path("f"), O_RDONLY | O_NONBLOCK));
	show_fl("reader", r);
	/* No writer at all reads as EOF, not EAGAIN. */
	try_read("no writer", r);
	show_poll1("reader", r, POLLIN);

	CASE("fifo_nonblock_writer");
	IOSHOW(open(path("other"), O_WRONLY | O_NONBLOCK));
	IOSHOW(mkfifo(path("lonely"), 0600));
	IOSHOW(open(path("lonely"), O_WRONLY | O_NONBLOCK));
	IOSHOW(unlink(path("lonely")));
	w = FDSHOW(open(path("f"), O_WRONLY | O_NONBLOCK));
	show_fl("writer", w);
	try_read("writer present, empty", r);
	show_poll1("reader", r, POLLIN);
	show_poll1("writer", w, POLLOUT);
	IOSHOW(write(w, "abc", 3));
	try_read("data", r);

	CASE("fifo_pollhup_needs_a_writer_seen");
	/* POLLHUP only for readers that have seen a writer come and go. */
	io_close(w);
	show_poll1("old reader", r, POLLIN);
	try_read("old reader", r);
	r2 = FDSHOW(open(path("f"), O_RDONLY | O_NONBLOCK));
	show_poll1("new reader", r2, POLLIN);
	show_poll1("old reader", r, POLLIN);
	w = xopen(path("f"), O_WRONLY | O_NONBLOCK);
	show_poll1("new reader, writer open", r2, POLLIN);
	show_poll1("old reader, writer open", r, POLLIN);
	io_close(w);
	show_poll1("new reader, writer gone", r2, POLLIN);
	show_poll1("old reader, writer gone", r, POLLIN);
	io_close(r2);

	CASE("fifo_eof_then_new_writer");
	try_read("writer gone", r);
	w = xopen(path("f"), O_WRONLY);
	try_read("new writer", r);
	IOSHOW(write(w, "again", 5));
	io_close(w);
	try_read("data after writer closed", r);
	try_read("then", r);
	io_close(r);

	CASE("fifo_blocking_reader_waits");
	if ((pid = io_fork()) == 0) {
		io_wait_sleeping(parent);
		fd = open(path("f"), O_WRONLY);
		_exit(fd < 0 || write(fd, "hello", 5) != 5);
	}
	r = FDSHOW(open(path("f"), O_RDONLY));
	n = IOSHOW(read(r, buf, sizeof buf));
	printf("  data: \"%.*s\"\n", (int)(n > 0 ? n : 0), buf);
	IOSHOW(read(r, buf, sizeof buf));
	show_status_io("writer", io_reap(pid));
	io_close(r);

	CASE("fifo_blocking_writer_waits");
	if ((pid = io_fork()) == 0) {
		io_wait_sleeping(parent);
		fd = open(path("f"), O_RDONLY);
		long total = 0;
		while ((n = read(fd, buf, sizeof buf)) > 0)
			total += n;
		printf("  reader: %ld bytes, then read = %ld\n", total, n);
		_exit(0);
	}
	w = FDSHOW(open(path("f"), O_WRONLY));
	IOSHOW(write(w, big, 1000));
	io_close(w);
	show_status_io("reader", io_reap(pid));

	CASE("fifo_rdwr_never_blocks");
	fd = FDSHOW(open(path("f"), O_RDWR));
	show_fl("O_RDWR", fd);
	show_poll1("O_RDWR", fd, POLLIN | POLLOUT);
	IOSHOW(write(fd, "self", 4));
	show_poll1("O_RDWR with data", fd, POLLIN | POLLOUT);
	n = IOSHOW(read(fd, buf, sizeof buf));
	printf("  data: \"%.*s\"\n", (int)(n > 0 ? n : 0), buf);
	/* It counts as a reader and as a writer. */
	w = FDSHOW(open(path("f"), O_WRONLY | O_NONBLOCK));
	r = FDSHOW(open(path("f"), O_RDONLY));
	io_close(fd);
	show_poll1("reader", r, POLLIN);
	io_close(w);
	show_poll1("reader", r, POLLIN);
	io_close(r);

	CASE("fifo_data_between_processes");
	if ((pid = io_fork()) == 0) {
		for (size_t i = 0; i < sizeof big; i++)
			big[i] = i % 251;
		fd = open(path("f"), O_WRONLY);
		if (fd < 0)
			_exit(1);
		for (size_t off = 0; off < sizeof big; off += 5000)
			if (write(fd, big + off, 5000) != 5000)
				_exit(1);
		_exit(0);
	}
	r = xopen(path("f"), O_RDONLY);
	{
		long total = 0, bad = 0;
		while ((n = read(r, buf, sizeof buf)) > 0) {
			for (long i = 0; i < n; i++)
				bad += (unsigned char)buf[i] != (total + i) % 251;
			total += n;
		}
		printf("  %ld bytes until EOF, %ld out of order\n", total, bad);
	}
	show_status_io("writer", io_reap(pid));
	io_close(r);

	CASE("fifo_data_dropped_at_last_close");
	fd = xopen(path("f"), O_RDWR);
	IOSHOW(write(fd, "lost", 4));
	printf("  FIONREAD = %d\n", io_nread(fd));
	io_close(fd);
	fd = xopen(path("f"), O_RDWR);
	printf("  reopened: FIONREAD = %d\n", io_nread(fd));
	IOSHOW(write(fd, "kept", 4));
	r = xopen(path("f"), O_RDONLY | O_NONBLOCK);
	io_close(fd);
	printf("  after the writer's close: FIONREAD = %d\n", io_nread(r));
	try_read("kept", r);
	io_close(r);

	CASE("fifo_reader_closed_before_another_reader");
	/* No writer is left when the first reader closes, but the other
	 * reader still holds the FIFO: its data stays. */
	r = xopen(path("f"), O_RDONLY | O_NONBLOCK);
	fd = xopen(path("f"), O_RDONLY | O_NONBLOCK);
	w = xopen(path("f"), O_WRONLY);
	IOSHOW(write(w, "still", 5));
	io_close(w);
	io_close(r);
	printf("  other reader: FIONREAD = %d\n", io_nread(fd));
	try_read("other reader", fd);
	w = xopen(path("f"), O_WRONLY);
	IOSHOW(write(w, "gone", 4));
	io_close(w);
	io_close(fd);
	fd = xopen(path("f"), O_RDWR);
	printf("  after every end closed: FIONREAD = %d\n", io_nread(fd));
	io_close(fd);

	CASE("fifo_reader_close_leaves_opener_waiting");
	/* A reader closing with no writer left (one came and went) does
	 * not end another reader's open, which waits for a writer. */
	r = xopen(path("f"), O_RDONLY | O_NONBLOCK);
	io_close(xopen(path("f"), O_WRONLY));
	if ((pid = io_fork()) == 0) {
		fd = open(path("f"), O_RDONLY);
		_exit(fd < 0 ? 2 : read(fd, buf, sizeof buf) == 4 ? 0 : 1);
	}
	io_wait_sleeping(pid);
	io_close(r);
	{
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	printf("  opener still waits: %s\n", waitpid(pid, NULL, WNOHANG) == 0 ? "yes" : "no");
	w = xopen(path("f"), O_WRONLY);
	IOSHOW(write(w, "late", 4));
	io_close(w);
	show_status_io("opener", io_reap(pid));

	CASE("fifo_mknod");
	IOSHOW(mknod(path("node"), S_IFIFO | 0640, 0));
	show_stat("node", path("node"));
	IOSHOW(mknod(path("node2"), S_IFIFO | 0600, makedev(1, 3)));
	show_stat("node2", path("node2"));
	IOSHOW(mknod(path("node"), S_IFIFO | 0600, 0));
	fd = FDSHOW(open(path("node2"), O_RDWR));
	IOSHOW(write(fd, "via mknod", 9));
	try_read("node2", fd);
	io_close(fd);
	IOSHOW(unlink(path("node")));
	IOSHOW(unlink(path("node2")));

	CASE("fifo_open_creat_trunc_existing");
	fd = FDSHOW(open(path("f"), O_RDWR | O_CREAT, 0600));
	{
		struct stat st;
		fstat(fd, &st);
		printf("  O_CREAT opened the FIFO: %s\n", S_ISFIFO(st.st_mode) ? "yes" : "no");
	}
	IOSHOW(open(path("f"), O_RDWR | O_CREAT | O_EXCL, 0600));
	IOSHOW(write(fd, "queued", 6));
	w = FDSHOW(open(path("f"), O_WRONLY | O_TRUNC | O_NONBLOCK));
	printf("  after O_TRUNC open: FIONREAD = %d\n", io_nread(fd));
	r = FDSHOW(open(path("f"), O_RDONLY | O_TRUNC | O_NONBLOCK));
	printf("  after O_TRUNC open: FIONREAD = %d\n", io_nread(fd));
	show_stat("f", path("f"));
	IOSHOW(ftruncate(fd, 0));
	IOSHOW(truncate(path("f"), 0));
	IOSHOW(lseek(fd, 0, SEEK_SET));
	IOSHOW(open(path("f"), O_RDWR | O_DIRECTORY));
	IOSHOW(open(path("f/x"), O_RDWR));
	io_close(w);
	io_close(r);
	io_close(fd);

	CASE("fifo_pipe_size_shared_by_openers");
	fd = xopen(path("f"), O_RDWR);
	r = xopen(path("f"), O_RDONLY);
	printf("  F_GETPIPE_SZ = %d\n", fcntl(r, F_GETPIPE_SZ));
	IOSHOW(fcntl(fd, F_SETPIPE_SZ, 8192));
	printf("  F_GETPIPE_SZ other opener = %d\n", fcntl(r, F_GETPIPE_SZ));
	printf("  accepted non-blocking: %ld\n", io_fill(fd, 1));
	io_close(fd);
	io_close(r);
	fd = xopen(path("f"), O_RDWR);
	printf("  after the last close, F_GETPIPE_SZ = %d\n", fcntl(fd, F_GETPIPE_SZ));
	io_close(fd);

	CASE("fifo_unlink_while_open");
	IOSHOW(mkfifo(path("gone"), 0600));
	fd = xopen(path("gone"), O_RDWR);
	r = xopen(path("gone"), O_RDONLY | O_NONBLOCK);
	IOSHOW(unlink(path("gone")));
	IOSHOW(write(fd, "still works", 11));
	try_read("via second opener", r);
	{
		struct stat st;
		fstat(fd, &st);
		printf("  fstat: S_IFIFO=%s nlink=%lu\n", S_ISFIFO(st.st_mode) ? "yes" : "no",
		       (unsigned long)st.st_nlink);
	}
	IOSHOW(open(path("gone"), O_RDWR));
	io_close(fd);
	io_close(r);

	CASE("fifo_o_path");
	/* O_PATH neither opens the pipe nor blocks; reopening it does. */
	fd = FDSHOW(open(path("f"), O_PATH));
	IOSHOW(read(fd, buf, 1));
	IOSHOW(write(fd, "x", 1));
	IOSHOW(fcntl(fd, F_GETPIPE_SZ));
	IOSHOW(open(path("f"), O_WRONLY | O_NONBLOCK));
	{
		char proc[64], link[128];
		snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
		r = FDSHOW(open(proc, O_RDWR));
		snprintf(proc, sizeof proc, "/proc/self/fd/%d", r);
		ssize_t l = readlink(proc, link, sizeof link - 1);
		link[l < 0 ? 0 : l] = 0;
		printf("  /proc/self/fd link is the path: %s\n", strcmp(link, path("f")) ? "no" : "yes");
		IOSHOW(write(r, "ok", 2));
		try_read("reopened", r);
		io_close(r);
	}
	io_close(fd);

	CASE("fifo_permissions");
	IOSHOW(chmod(g_dir, 0711));
	IOSHOW(mkfifo(path("open"), 0666));
	IOSHOW(chmod(path("open"), 0666));
	in_child(NOBODY, nobody_open, NULL);

	CASE("fifo_blocking_open_eintr");
	io_handler(SIGUSR1, on_usr1, 0);
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
		IOSHOW(open(path("f"), O_RDONLY));
		io_post(ack[1]);
		show_status_io("helper", io_reap(pid));
		io_close(ack[1]);
		printf("  handler ran: %s\n", g_usr1 ? "yes" : "no");
		/* The interrupted open left no reader behind. */
		IOSHOW(open(path("f"), O_WRONLY | O_NONBLOCK));
	}

	CASE("fifo_blocking_open_restart");
	io_handler(SIGUSR1, on_usr1, SA_RESTART);
	{
		int nt[2];
		io_pipe(nt);
		g_notify = nt[1];
		g_usr1 = 0;
		if ((pid = io_fork()) == 0) {
			io_wait_sleeping(parent);
			kill(parent, SIGUSR1);
			io_wait(nt[0]);
			io_wait_sleeping(parent);
			fd = open(path("f"), O_WRONLY);
			_exit(fd < 0 || write(fd, "after restart", 13) != 13);
		}
		r = FDSHOW(open(path("f"), O_RDONLY));
		n = IOSHOW(read(r, buf, sizeof buf));
		printf("  data: \"%.*s\", handler ran %d time(s)\n", (int)(n > 0 ? n : 0), buf, g_usr1);
		show_status_io("writer", io_reap(pid));
		io_close(r);
		g_notify = -1;
		io_close(nt[0]);
		io_close(nt[1]);
	}

	unlink(path("f"));
	unlink(path("open"));
	if (rmdir(g_dir))
		die("rmdir");
	return 0;
}
