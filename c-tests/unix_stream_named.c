/* Named AF_UNIX stream sockets: bind (paths, abstract names, autobind) and its errors, listen,
 * accept and accept4, connect blocking and non-blocking, a full listen backlog, socket file
 * permissions (connect as nobody), names seen by getsockname/getpeername.
 */
#include "common.h"

static void show_file(const char *what, const char *path)
{
	struct stat st;
	if (lstat(path, &st))
		printf("  stat %s = -1 %s\n", what, errname_io(errno));
	else
		printf("  stat %s: S_ISSOCK=%d perms=%#o size=%lld\n", what, S_ISSOCK(st.st_mode),
		       st.st_mode & 07777, (long long)st.st_size);
}

/* In a child as uid: connect a new stream socket to a, print the result. */
static void connect_as(uid_t uid, const struct sockaddr_un *a, socklen_t len)
{
	pid_t pid = io_fork();
	if (pid == 0) {
		if (uid)
			become(uid);
		int s = sk_socket(SOCK_STREAM);
		errno = 0;
		int r = connect(s, (const struct sockaddr *)a, len);
		printf("  connect as uid %u = %s\n", (unsigned)uid, r ? errname_io(errno) : "0");
		_exit(0);
	}
	show_status_io("child", io_reap(pid));
}

int main(void)
{
	sk_setup();
	alarm(20);
	signal(SIGPIPE, SIG_IGN);
	struct sockaddr_un a, b, got;
	socklen_t la, lb, lg;
	int l, c, s, s2, fds[8];
	char buf[256];
	long n;
	pid_t pid;
	umask(022);

	CASE("named_bind_path");
	la = sk_path(&a, "srv");
	l = sk_socket(SOCK_STREAM);
	sk_show_names("unbound", l);
	IOSHOW(bind(l, (struct sockaddr *)&a, la));
	sk_show_names("bound", l);
	show_file("socket file", a.sun_path);
	IOSHOW(bind(l, (struct sockaddr *)&a, la));
	lb = sk_path(&b, "other");
	IOSHOW(bind(l, (struct sockaddr *)&b, lb));
	s = sk_socket(SOCK_STREAM);
	IOSHOW(bind(s, (struct sockaddr *)&a, la));
	IOSHOW(bind(s, (struct sockaddr *)&a, 1));
	IOSHOW(bind(s, (struct sockaddr *)&a, sizeof a + 1));
	{
		struct sockaddr_un bad = a;
		bad.sun_family = AF_INET;
		IOSHOW(bind(s, (struct sockaddr *)&bad, la));
		lb = sk_path(&bad, "no-such-dir/x");
		IOSHOW(bind(s, (struct sockaddr *)&bad, lb));
		int f = open(SK_DIR "/plain", O_CREAT | O_WRONLY, 0600);
		io_close(f);
		lb = sk_path(&bad, "plain");
		IOSHOW(bind(s, (struct sockaddr *)&bad, lb));
		lb = sk_path(&bad, "plain/x");
		IOSHOW(bind(s, (struct sockaddr *)&bad, lb));
	}
	sk_show_names("after failed binds", s);
	io_close(s);

	CASE("named_listen_accept_errors");
	s = sk_socket(SOCK_STREAM);
	IOSHOW(listen(s, 5));
	IOSHOW(accept(s, NULL, NULL));
	IOSHOW(accept(l, NULL, NULL));
	io_close(s);
	s = sk_socket(SOCK_DGRAM);
	IOSHOW(listen(s, 5));
	IOSHOW(accept(s, NULL, NULL));
	io_close(s);
	IOSHOW(listen(l, 5));
	IOSHOW(listen(l, 2));
	sk_show_opt("SO_ACCEPTCONN listener", l, SOL_SOCKET, SO_ACCEPTCONN);
	IOSHOW(accept(0, NULL, NULL));
	IOSHOW(listen(999, 1));

	CASE("named_connect_errors");
	lb = sk_path(&b, "missing");
	s = sk_socket(SOCK_STREAM);
	IOSHOW(connect(s, (struct sockaddr *)&b, lb));
	lb = sk_path(&b, "plain");
	IOSHOW(connect(s, (struct sockaddr *)&b, lb));
	IOSHOW(connect(s, (struct sockaddr *)&a, 1));
	{
		struct sockaddr_un bad = a;
		bad.sun_family = AF_INET;
		IOSHOW(connect(s, (struct sockaddr *)&bad, la));
	}
	c = sk_socket(SOCK_STREAM);
	lb = sk_path(&b, "notlistening");
	if (bind(c, (struct sockaddr *)&b, lb))
		die("bind");
	IOSHOW(connect(s, (struct sockaddr *)&b, lb));
	io_close(c);
	c = sk_socket(SOCK_DGRAM);
	lb = sk_path(&b, "dgram");
	if (bind(c, (struct sockaddr *)&b, lb))
		die("bind");
	IOSHOW(connect(s, (struct sockaddr *)&b, lb));
	io_close(c);
	IOSHOW(connect(s, (struct sockaddr *)&b, lb));
	sk_show_names("after failed connects", s);
	sk_show_opt("SO_ERROR", s, SOL_SOCKET, SO_ERROR);
	io_close(s);

	CASE("named_connect_accept");
	c = sk_socket(SOCK_STREAM);
	IOSHOW(connect(c, (struct sockaddr *)&a, la));
	sk_show_names("client", c);
	memset(&got, 0x55, sizeof got);
	lg = sizeof got;
	s = FDSHOW(accept(l, (struct sockaddr *)&got, &lg));
	printf("  accept's peer address: %s\n", sk_name(&got, lg));
	sk_show_names("accepted", s);
	IOSHOW(connect(c, (struct sockaddr *)&a, la));
	IOSHOW(connect(l, (struct sockaddr *)&a, la));
	IOSHOW(listen(c, 1));
	IOSHOW(write(c, "ping", 4));
	n = IOSHOW(read(s, buf, sizeof buf));
	printf("  data \"%.*s\"\n", (int)n, buf);
	IOSHOW(write(s, "pong", 4));
	n = IOSHOW(read(c, buf, sizeof buf));
	printf("  data \"%.*s\"\n", (int)n, buf);
	sk_show_opt("SO_ACCEPTCONN accepted", s, SOL_SOCKET, SO_ACCEPTCONN);
	io_close(s);
	io_close(c);

	CASE("named_accept4_flags");
	c = sk_connect(SOCK_STREAM, &a, la);
	IOSHOW(accept4(l, NULL, NULL, 0x40000000));
	s = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	printf("  accept4(SOCK_NONBLOCK|SOCK_CLOEXEC): %s O_NONBLOCK=%d FD_CLOEXEC=%d\n",
	       s >= 0 ? "fd" : errname_io(errno), !!(fcntl(s, F_GETFL) & O_NONBLOCK),
	       !!(fcntl(s, F_GETFD) & FD_CLOEXEC));
	IOSHOW(read(s, buf, 1));
	io_close(s);
	io_close(c);
	c = sk_connect(SOCK_STREAM, &a, la);
	lg = 3;
	s = accept4(l, (struct sockaddr *)&got, &lg, 0);
	printf("  accept4 with addrlen 3: %s, addrlen now %u\n", s >= 0 ? "fd" : errname_io(errno),
	       (unsigned)lg);
	printf("  O_NONBLOCK=%d FD_CLOEXEC=%d\n", !!(fcntl(s, F_GETFL) & O_NONBLOCK),
	       !!(fcntl(s, F_GETFD) & FD_CLOEXEC));
	io_close(s);
	io_close(c);

	CASE("named_nonblocking_accept_empty");
	io_set_nonblock(l, 1);
	IOSHOW(accept(l, NULL, NULL));
	IOSHOW(accept4(l, NULL, NULL, SOCK_CLOEXEC));
	io_set_nonblock(l, 0);
	io_close(l);
	unlink(a.sun_path);

	CASE("named_backlog_full_nonblocking_connect");
	lb = sk_path(&b, "backlog");
	l = sk_listener(SOCK_STREAM, &b, lb, 1);
	for (int i = 0; i < 4; i++) {
		fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		errno = 0;
		int r = connect(fds[i], (struct sockaddr *)&b, lb);
		printf("  non-blocking connect %d = %s\n", i, r ? errname_io(errno) : "0");
	}
	{
		struct pollfd p = { l, POLLIN, 0 };
		poll(&p, 1, 0);
		printf("  listener revents=%s\n", pollbits(p.revents));
	}
	s = sk_accept(l);
	errno = 0;
	printf("  connect 2 again after one accept = %s\n",
	       connect(fds[2], (struct sockaddr *)&b, lb) ? errname_io(errno) : "0");
	errno = 0;
	printf("  connect 3 again = %s\n",
	       connect(fds[3], (struct sockaddr *)&b, lb) ? errname_io(errno) : "0");
	io_close(s);
	for (int i = 0; i < 4; i++)
		io_close(fds[i]);

	CASE("named_backlog_full_blocking_connect");
	/* The queue holds 2 with backlog 1: a third blocking connect sleeps until an accept. */
	io_close(l);
	unlink(b.sun_path);
	l = sk_listener(SOCK_STREAM, &b, lb, 1);
	fds[0] = sk_connect(SOCK_STREAM, &b, lb);
	fds[1] = sk_connect(SOCK_STREAM, &b, lb);
	if ((pid = io_fork()) == 0) {
		int t = sk_socket(SOCK_STREAM);
		errno = 0;
		int r = connect(t, (struct sockaddr *)&b, lb);
		printf("  child: blocking connect = %s\n", r ? errname_io(errno) : "0");
		r = write(t, "late", 4);
		printf("  child: write = %d\n", r);
		_exit(0);
	}
	io_wait_sleeping(pid);
	s = sk_accept(l);
	show_status_io("child", io_reap(pid));
	io_close(s);
	s = sk_accept(l);
	io_close(s);
	s = sk_accept(l);
	n = read(s, buf, sizeof buf);
	printf("  third accepted connection read = %ld \"%.*s\"\n", n, (int)(n > 0 ? n : 0), buf);
	io_close(s);
	io_close(fds[0]);
	io_close(fds[1]);

	CASE("named_blocked_accept_woken_by_connect");
	if ((pid = io_fork()) == 0) {
		struct sockaddr_un p;
		socklen_t pl = sizeof p;
		int t = accept(l, (struct sockaddr *)&p, &pl);
		printf("  child: accept = %s, peer %s\n", t >= 0 ? "fd" : errname_io(errno), sk_name(&p, pl));
		n = read(t, buf, sizeof buf);
		printf("  child: read = %ld \"%.*s\"\n", n, (int)(n > 0 ? n : 0), buf);
		_exit(0);
	}
	io_wait_sleeping(pid);
	c = sk_connect(SOCK_STREAM, &b, lb);
	if (write(c, "hello", 5) != 5)
		die("write");
	show_status_io("child", io_reap(pid));
	io_close(c);
	io_close(l);

	CASE("named_permissions");
	la = sk_path(&a, "perm");
	l = sk_listener(SOCK_STREAM, &a, la, 8);
	IOSHOW(chmod(a.sun_path, 0600));
	connect_as(NOBODY, &a, la);
	connect_as(0, &a, la);
	IOSHOW(chmod(a.sun_path, 0602));
	connect_as(NOBODY, &a, la);
	IOSHOW(chmod(a.sun_path, 0604));
	connect_as(NOBODY, &a, la);
	IOSHOW(chmod(SK_DIR, 0700));
	IOSHOW(chmod(a.sun_path, 0666));
	connect_as(NOBODY, &a, la);
	IOSHOW(chmod(SK_DIR, 0755));
	connect_as(NOBODY, &a, la);
	io_close(l);

	CASE("named_umask_and_unlink");
	umask(077);
	lb = sk_path(&b, "masked");
	l = sk_listener(SOCK_STREAM, &b, lb, 8);
	umask(022);
	show_file("socket made under umask 077", b.sun_path);
	IOSHOW(unlink(b.sun_path));
	s = sk_socket(SOCK_STREAM);
	IOSHOW(connect(s, (struct sockaddr *)&b, lb));
	sk_show_names("listener after unlink", l);
	s2 = sk_socket(SOCK_STREAM);
	IOSHOW(bind(s2, (struct sockaddr *)&b, lb));
	IOSHOW(listen(s2, 1));
	IOSHOW(connect(s, (struct sockaddr *)&b, lb));
	{
		struct pollfd p[2] = { { l, POLLIN, 0 }, { s2, POLLIN, 0 } };
		poll(p, 2, 0);
		printf("  old listener revents=%s\n", pollbits(p[0].revents));
		printf("  new listener revents=%s\n", pollbits(p[1].revents));
	}
	io_close(s);
	io_close(s2);
	io_close(l);

	CASE("named_abstract");
	la = sk_abstract(&a, "abs");
	l = sk_listener(SOCK_STREAM, &a, la, 4);
	sk_show_names("abstract listener", l);
	s = sk_socket(SOCK_STREAM);
	IOSHOW(bind(s, (struct sockaddr *)&a, la));
	IOSHOW(bind(s, (struct sockaddr *)&a, la - 1));
	sk_show_names("bound to a prefix of the name", s);
	io_close(s);
	c = sk_connect(SOCK_STREAM, &a, la);
	sk_show_names("client", c);
	s = sk_accept(l);
	sk_show_names("accepted", s);
	s2 = sk_socket(SOCK_STREAM);
	IOSHOW(connect(s2, (struct sockaddr *)&a, la - 1));
	IOSHOW(connect(s2, (struct sockaddr *)&a, la + 1));
	io_close(s2);
	io_close(s);
	io_close(c);
	io_close(l);
	s = sk_socket(SOCK_STREAM);
	IOSHOW(bind(s, (struct sockaddr *)&a, la));
	io_close(s);
	{
		DIR *d = opendir(SK_DIR);
		int files = 0;
		struct dirent *e;
		while (d && (e = readdir(d)))
			files++;
		if (d)
			closedir(d);
		printf("  entries in the socket directory (with . and ..): %d\n", files);
	}

	CASE("named_autobind");
	s = sk_socket(SOCK_STREAM);
	IOSHOW(bind(s, (struct sockaddr *)&a, sizeof(sa_family_t)));
	sk_show_names("autobound", s);
	s2 = sk_socket(SOCK_STREAM);
	IOSHOW(bind(s2, (struct sockaddr *)&a, sizeof(sa_family_t)));
	{
		struct sockaddr_un n1, n2;
		socklen_t l1 = sizeof n1, l2 = sizeof n2;
		getsockname(s, (struct sockaddr *)&n1, &l1);
		getsockname(s2, (struct sockaddr *)&n2, &l2);
		printf("  two autobind names differ: %s\n",
		       l1 == l2 && !memcmp(&n1, &n2, l1) ? "no" : "yes");
		IOSHOW(listen(s, 2));
		c = sk_socket(SOCK_STREAM);
		IOSHOW(connect(c, (struct sockaddr *)&n1, l1));
		sk_show_names("client of an autobound listener", c);
		io_close(c);
	}
	io_close(s);
	io_close(s2);
	s = sk_socket(SOCK_STREAM);
	{
		int one = 1;
		IOSHOW(setsockopt(s, SOL_SOCKET, SO_PASSCRED, &one, sizeof one));
		la = sk_path(&a, "passcred");
		l = sk_listener(SOCK_STREAM, &a, la, 2);
		IOSHOW(connect(s, (struct sockaddr *)&a, la));
		sk_show_names("SO_PASSCRED client (autobound by connect)", s);
		c = sk_socket(SOCK_STREAM);
		IOSHOW(connect(c, (struct sockaddr *)&a, la));
		sk_show_names("plain client", c);
		io_close(c);
		io_close(l);
	}
	io_close(s);

	CASE("named_listener_closed_with_pending");
	la = sk_path(&a, "pending");
	l = sk_listener(SOCK_STREAM, &a, la, 4);
	c = sk_connect(SOCK_STREAM, &a, la);
	IOSHOW(write(c, "queued", 6));
	io_close(l);
	IOSHOW(read(c, buf, sizeof buf));
	IOSHOW(read(c, buf, sizeof buf));
	IOSHOW(write(c, "more", 4));
	io_close(c);
	s = sk_socket(SOCK_STREAM);
	IOSHOW(connect(s, (struct sockaddr *)&a, la));
	io_close(s);

	sk_cleanup();
	return 0;
}
