/* Ancillary data on AF_UNIX sockets: SCM_RIGHTS with regular files, sockets and pipes (to a
 * fork child and to an unrelated exec'd process that then reads and writes the pipes), fds kept
 * alive while in flight, MSG_CTRUNC, MSG_CMSG_CLOEXEC, the SCM_RIGHTS limits and errors,
 * SCM_CREDENTIALS with SO_PASSCRED (as root and as nobody), SO_PEERCRED. */
#include "common.h"

#define SCM_SOCK "scm"

/* Exec'd image, started before the sender made its pipes: connect to SK_DIR/scm, receive a
 * pipe read end and a pipe write end, read the first until EOF, answer through the second. */
static int scm_receiver(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	struct sockaddr_un a;
	socklen_t la = sk_path(&a, SCM_SOCK);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, la))
		return SETUP_FAIL;
	char data[64], buf[256];
	int fds[16], nfds, fl = 0;
	long n = sk_recv_fds(s, data, sizeof data, fds, &nfds, 4, 0, &fl);
	printf("  receiver: recvmsg = %ld \"%.*s\", %d fds: %s and %s\n", n, (int)(n > 0 ? n : 0), data,
	       nfds, nfds > 0 ? sk_fdkind(fds[0]) : "-", nfds > 1 ? sk_fdkind(fds[1]) : "-");
	if (nfds != 2)
		return 1;
	printf("  receiver: F_GETFL of the pipe ends: %s, %s\n",
	       (fcntl(fds[0], F_GETFL) & O_ACCMODE) == O_RDONLY ? "O_RDONLY" : "other",
	       (fcntl(fds[1], F_GETFL) & O_ACCMODE) == O_WRONLY ? "O_WRONLY" : "other");
	long total = 0;
	while ((n = read(fds[0], buf + total, sizeof buf - 1 - total)) > 0)
		total += n;
	printf("  receiver: read the passed pipe until EOF (%ld): \"%.*s\"\n", n, (int)total, buf);
	n = write(fds[1], "reply through the passed pipe", 29);
	printf("  receiver: write into the passed pipe = %ld\n", n);
	close(fds[0]);
	close(fds[1]);
	close(s);
	return 0;
}

static void show_cred_msg(const char *what, int s)
{
	char data[64];
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred)) + 64];
		struct cmsghdr align;
	} u;
	struct iovec io = { data, sizeof data };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = &io;
	m.msg_iovlen = 1;
	m.msg_control = u.buf;
	m.msg_controllen = sizeof u.buf;
	errno = 0;
	long n = recvmsg(s, &m, 0);
	if (n < 0) {
		printf("  %s: recvmsg = -1 %s\n", what, errname_io(errno));
		return;
	}
	printf("  %s: recvmsg = %ld \"%.*s\" msg_flags=%s\n", what, n, (int)n, data, sk_msgflags(m.msg_flags));
	int any = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		any = 1;
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred cr;
			memcpy(&cr, CMSG_DATA(c), sizeof cr);
			printf("    SCM_CREDENTIALS cmsg_len=%zu pid=%s uid=%u gid=%u\n", c->cmsg_len,
			       pidrel(cr.pid), cr.uid, cr.gid);
		} else {
			printf("    cmsg level %d type %d\n", c->cmsg_level, c->cmsg_type);
		}
	}
	if (!any)
		printf("    no control message\n");
}

static void on_alarm(int sig)
{
	(void)sig;
}

static long send_creds(int s, pid_t pid, uid_t uid, gid_t gid)
{
	struct ucred cr = { pid, uid, gid };
	return sk_send_cmsg(s, "cred", 4, SCM_CREDENTIALS, &cr, sizeof cr, 0);
}

static void show_peercred(const char *what, int s)
{
	struct ucred cr;
	socklen_t l = sizeof cr;
	memset(&cr, 0x55, sizeof cr);
	errno = 0;
	if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &l))
		printf("  %s SO_PEERCRED = -1 %s\n", what, errname_io(errno));
	else
		printf("  %s SO_PEERCRED: pid=%s uid=%d gid=%d (optlen %u)\n", what, pidrel(cr.pid),
		       (int)cr.uid, (int)cr.gid, (unsigned)l);
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "scm-recv"))
		return scm_receiver();
	sk_setup();
	alarm(20);
	signal(SIGPIPE, SIG_IGN);
	int sv[2], p[2], q[2], fds[300], got[16], ngot, fl;
	char buf[256];
	long n;
	pid_t pid;
	struct sockaddr_un a;
	socklen_t la;

	CASE("scm_rights_regular_file");
	sk_pair(SOCK_STREAM, sv);
	{
		int f = open(SK_DIR "/data", O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (f < 0 || write(f, "0123456789", 10) != 10)
			die("file");
		lseek(f, 2, SEEK_SET);
		IOSHOW(sk_send_fds(sv[0], &f, 1, "F", 1));
		int lowest = dup(0);
		io_close(lowest);
		n = sk_recv_fds(sv[1], buf, sizeof buf, got, &ngot, 4, 0, &fl);
		printf("  recvmsg = %ld, %d fd(s): %s, the lowest free fd: %s, msg_flags=%s\n", n, ngot,
		       ngot ? sk_fdkind(got[0]) : "-", ngot && got[0] == lowest ? "yes" : "no",
		       sk_msgflags(fl));
		n = read(got[0], buf, 3);
		printf("  read via the received fd (shared offset) = %ld \"%.*s\"\n", n, (int)n, buf);
		printf("  offset of the original now %ld\n", (long)lseek(f, 0, SEEK_CUR));
		printf("  FD_CLOEXEC of the received fd = %d\n", !!(fcntl(got[0], F_GETFD) & FD_CLOEXEC));
		io_close(got[0]);
		IOSHOW(sk_send_fds(sv[0], &f, 1, "G", 1));
		n = sk_recv_fds(sv[1], buf, sizeof buf, got, &ngot, 4, MSG_CMSG_CLOEXEC, &fl);
		printf("  with MSG_CMSG_CLOEXEC: %d fd(s), FD_CLOEXEC = %d\n", ngot,
		       ngot ? !!(fcntl(got[0], F_GETFD) & FD_CLOEXEC) : -1);
		if (ngot)
			io_close(got[0]);
		io_close(f);
	}

	CASE("scm_rights_pipe_to_fork_child");
	/* The child exists before the pipe does: it can only have it from the message. */
	if ((pid = io_fork()) == 0) {
		n = sk_recv_fds(sv[1], buf, sizeof buf, got, &ngot, 4, 0, &fl);
		printf("  child: recvmsg = %ld, %d fd(s): %s\n", n, ngot, ngot ? sk_fdkind(got[0]) : "-");
		long total = 0;
		while (ngot && (n = read(got[0], buf + total, sizeof buf - total)) > 0)
			total += n;
		printf("  child: read until EOF: \"%.*s\"\n", (int)total, buf);
		_exit(0);
	}
	io_pipe(p);
	if (write(p[1], "written before sending;", 23) != 23)
		die("write");
	n = sk_send_fds(sv[0], &p[0], 1, "P", 1);
	io_close(p[0]);
	io_wait_sleeping(pid);
	if (write(p[1], "after", 5) != 5)
		die("write");
	io_close(p[1]);
	show_status_io("child", io_reap(pid));
	printf("  parent: sendmsg = %ld\n", n);

	CASE("scm_rights_pipes_to_exec_process");
	la = sk_path(&a, SCM_SOCK);
	{
		int l = sk_listener(SOCK_STREAM, &a, la, 1);
		pid_t recv_pid = io_fork();
		if (recv_pid == 0) {
			io_close(l);
			execl("/proc/self/exe", "unix_scm", "scm-recv", (char *)NULL);
			_exit(SETUP_FAIL);
		}
		int conn = sk_accept(l);
		io_close(l);
		if ((pid = io_fork()) == 0) {
			/* The sender: its pipes are made after the receiver was started. */
			io_pipe(p);
			io_pipe(q);
			int pass[2] = { p[0], q[1] };
			if (sk_send_fds(conn, pass, 2, "two pipe ends", 13) != 13)
				_exit(1);
			io_close(p[0]);
			io_close(q[1]);
			io_close(conn);
			if (write(p[1], "sent after the sender closed its copy", 37) != 37)
				_exit(1);
			io_close(p[1]);
			n = read_all(q[0], buf, sizeof buf);
			printf("  sender: read its own pipe until EOF: \"%.*s\"\n", (int)n, buf);
			_exit(0);
		}
		io_close(conn);
		show_status_io("sender", io_reap(pid));
		show_status_io("receiver", io_reap(recv_pid));
	}

	CASE("scm_in_flight_keeps_pipe_open");
	io_pipe(p);
	IOSHOW(sk_send_fds(sv[0], &p[1], 1, "W", 1));
	io_close(p[1]);
	io_set_nonblock(p[0], 1);
	IOSHOW(read(p[0], buf, 10));
	show_poll1("read end, writer in flight", p[0], POLLIN);
	n = sk_recv_fds(sv[1], buf, sizeof buf, got, &ngot, 4, 0, &fl);
	printf("  received %d fd(s): %s\n", ngot, ngot ? sk_fdkind(got[0]) : "-");
	IOSHOW(write(got[0], "via the received end", 20));
	n = read(p[0], buf, sizeof buf);
	printf("  read = %ld \"%.*s\"\n", n, (int)(n > 0 ? n : 0), buf);
	io_close(got[0]);
	IOSHOW(read(p[0], buf, 10));
	io_close(p[0]);
	/* Never received: the fd dies with the socket that held it. */
	io_pipe(p);
	{
		int pair[2];
		sk_pair(SOCK_STREAM, pair);
		IOSHOW(sk_send_fds(pair[0], &p[1], 1, "W", 1));
		io_close(p[1]);
		io_set_nonblock(p[0], 1);
		IOSHOW(read(p[0], buf, 10));
		closep(pair);
		/* The kernel may free the in-flight file a little later (garbage collection). */
		struct pollfd pf = { p[0], POLLIN, 0 };
		poll(&pf, 1, 5000);
		IOSHOW(read(p[0], buf, 10));
	}
	io_close(p[0]);

	CASE("scm_rights_full_queue");
	/* A send that fails for a full queue passes nothing: the write end it carried is closed
	 * with ours, and the next message's fd is the one received. */
	{
		int pair[2];
		sk_pair(SOCK_STREAM, pair);
		io_set_nonblock(pair[0], 1);
		memset(buf, 'f', sizeof buf);
		while (send(pair[0], buf, sizeof buf, 0) > 0)
			;
		io_pipe(p);
		IOSHOW(sk_send_fds(pair[0], &p[1], 1, "W", 1));
		io_close(p[1]);
		show_poll1("read end, its writer's send failed", p[0], POLLIN);
		while (recv(pair[1], buf, sizeof buf, MSG_DONTWAIT) > 0)
			;
		/* A blocking send interrupted before it queued anything: EINTR, nothing passed. */
		int q2[2];
		while (send(pair[0], buf, sizeof buf, 0) > 0)
			;
		io_set_nonblock(pair[0], 0);
		io_pipe(q2);
		io_handler(SIGALRM, on_alarm, 0);
		/* Repeating: a tick that comes before the send waits (a loaded machine) is not the
		 * last, and alarm() then sets the timer back to one shot. */
		ualarm(100000, 100000);
		IOSHOW(sk_send_fds(pair[0], &q2[1], 1, "I", 1));
		alarm(20);
		io_close(q2[1]);
		while (recv(pair[1], buf, sizeof buf, MSG_DONTWAIT) > 0)
			;
		IOSHOW(sk_send_fds(pair[0], &p[0], 1, "R", 1));
		n = sk_recv_fds(pair[1], buf, sizeof buf, got, &ngot, 4, 0, &fl);
		printf("  recvmsg = %ld \"%.*s\", %d fd(s): %s\n", n, (int)(n > 0 ? n : 0), buf, ngot,
		       ngot ? sk_fdkind(got[0]) : "-");
		for (int k = 0; k < ngot; k++)
			io_close(got[k]);
		show_poll1("read end, its writer's send interrupted", q2[0], POLLIN);
		io_close(q2[0]);
		io_close(p[0]);
		closep(pair);
	}

	CASE("scm_rights_two_receivers");
	/* Two processes receive from one socket at once: each message comes with its fd. */
	{
		int pair[2];
		sk_pair(SOCK_SEQPACKET, pair);
		io_pipe(p);
		pid_t kids[2];
		for (int k = 0; k < 2; k++) {
			if ((kids[k] = io_fork()) == 0) {
				/* Half each, so that each one's calls are the same on every run; the exit
				 * status counts the messages that came without their fd. */
				int without = 0;
				for (int i = 0; i < 150; i++) {
					n = sk_recv_fds(pair[1], buf, sizeof buf, got, &ngot, 4, 0, &fl);
					if (n != 3)
						_exit(200);
					without += ngot != 1;
					for (int j = 0; j < ngot; j++)
						close(got[j]);
				}
				_exit(without);
			}
		}
		int sent = 0;
		for (int i = 0; i < 300; i++)
			sent += sk_send_fds(pair[0], &p[0], 1, "msg", 3) == 3;
		printf("  sent %d messages with a pipe fd\n", sent);
		for (int k = 0; k < 2; k++)
			show_status_io("receiver (exit status: messages without their fd)", io_reap(kids[k]));
		closep(pair);
		closep(p);
	}

	CASE("scm_rights_many_receivers");
	/* More receivers than CPUs take from one socket at once, descheduled anywhere (between
	 * taking a message and its fds too; every 50 messages one is stopped for 30 ms): every
	 * message comes with its own fd, told by the pipe it names (message k carries pipe k%4's
	 * write end, whose inode the receiver knows). */
	for (int t = 0; t < 2; t++) {
		int type = t ? SOCK_STREAM : SOCK_SEQPACKET, pair[2], four[4][2];
		struct stat want[4];
		sk_pair(type, pair);
		for (int k = 0; k < 4; k++) {
			io_pipe(four[k]);
			if (fstat(four[k][1], &want[k]))
				die("fstat");
		}
		pid_t kids[8];
		for (int k = 0; k < 8; k++) {
			if ((kids[k] = io_fork()) == 0) {
				/* The same count each, so that each one's calls are the same on every run;
				 * the exit status counts messages without their own fd. */
				int bad = 0;
				for (int i = 0; i < 250; i++) {
					struct stat st;
					n = sk_recv_fds(pair[1], buf, sizeof buf, got, &ngot, 4, 0, &fl);
					if (n != 2 || buf[0] != 'm' || buf[1] < '0' || buf[1] > '3')
						_exit(200);
					bad += ngot != 1 || fstat(got[0], &st) || st.st_ino != want[buf[1] - '0'].st_ino;
					for (int j = 0; j < ngot; j++)
						close(got[j]);
				}
				_exit(bad);
			}
		}
		int sent = 0;
		for (int i = 0; i < 2000; i++) {
			char m[2] = { 'm', '0' + i % 4 };
			sent += sk_send_fds(pair[0], &four[i % 4][1], 1, m, 2) == 2;
			if (i % 50 == 49) {
				kill(kids[i / 50 % 8], SIGSTOP);
				usleep(30000);
				kill(kids[i / 50 % 8], SIGCONT);
			}
		}
		printf("  %s: sent %d messages, each with a pipe fd\n", t ? "stream" : "seqpacket", sent);
		for (int k = 0; k < 8; k++)
			show_status_io("receiver (exit status: messages without their own fd)", io_reap(kids[k]));
		closep(pair);
		for (int k = 0; k < 4; k++)
			closep(four[k]);
	}

	CASE("scm_ctrunc");
	{
		int three[3];
		io_pipe(p);
		three[0] = p[0];
		three[1] = p[1];
		three[2] = sv[0];
		IOSHOW(sk_send_fds(sv[0], three, 3, "3", 1));
		n = sk_recv_fds(sv[1], buf, sizeof buf, got, &ngot, 1, 0, &fl);
		printf("  control buffer of CMSG_SPACE(one int): recvmsg = %ld, %d fd(s) (%s), msg_flags=%s\n", n, ngot,
		       ngot ? sk_fdkind(got[0]) : "-", sk_msgflags(fl));
		for (int i = 0; i < ngot; i++)
			io_close(got[i]);
		IOSHOW(sk_send_fds(sv[0], three, 3, "3", 1));
		n = sk_recv_fds(sv[1], buf, sizeof buf, got, &ngot, 0, 0, &fl);
		printf("  no control buffer: recvmsg = %ld, %d fd(s), msg_flags=%s\n", n, ngot, sk_msgflags(fl));
		IOSHOW(sk_send_fds(sv[0], three, 3, "3", 1));
		n = sk_recv_fds(sv[1], buf, sizeof buf, got, &ngot, 4, 0, &fl);
		printf("  room for 4: recvmsg = %ld, %d fd(s): %s %s %s, msg_flags=%s\n", n, ngot,
		       sk_fdkind(got[0]), sk_fdkind(got[1]), sk_fdkind(got[2]), sk_msgflags(fl));
		/* The passed socket end works: write into it, read at sv[1]. */
		IOSHOW(write(got[2], "through a passed socket", 23));
		sk_recv("recv", sv[1], 100, 0);
		for (int i = 0; i < ngot; i++)
			io_close(got[i]);
		closep(p);
	}

	CASE("scm_stream_message_edges");
	IOSHOW(write(sv[0], "plain,", 6));
	io_pipe(p);
	IOSHOW(sk_send_fds(sv[0], &p[0], 1, "with fd,", 8));
	IOSHOW(write(sv[0], "plain again", 11));
	for (int i = 0; i < 3; i++) {
		n = sk_recv_fds(sv[1], buf, sizeof buf, got, &ngot, 4, MSG_DONTWAIT, &fl);
		if (n < 0) {
			printf("  recvmsg = -1 %s\n", errname_io(errno));
			break;
		}
		printf("  recvmsg = %ld \"%.*s\", %d fd(s)\n", n, (int)n, buf, ngot);
		for (int k = 0; k < ngot; k++)
			io_close(got[k]);
	}
	closep(p);

	CASE("scm_rights_errors_and_limits");
	{
		int badfd = 999;
		IOSHOW(sk_send_fds(sv[0], &badfd, 1, "x", 1));
		for (int i = 0; i < 254; i++)
			fds[i] = 0;
		IOSHOW(sk_send_fds(sv[0], fds, 253, "x", 1));
		n = sk_recv_fds(sv[1], buf, sizeof buf, got, &ngot, 16, 0, &fl);
		printf("  253 fds sent, room for 16: %d received, msg_flags=%s\n", ngot, sk_msgflags(fl));
		for (int i = 0; i < ngot; i++)
			io_close(got[i]);
		IOSHOW(sk_send_fds(sv[0], fds, 254, "x", 1));
		IOSHOW(recv(sv[1], buf, 10, MSG_DONTWAIT));
		struct msghdr m;
		struct iovec io = { "x", 1 };
		union {
			char b[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} u;
		memset(&m, 0, sizeof m);
		memset(&u, 0, sizeof u);
		m.msg_iov = &io;
		m.msg_iovlen = 1;
		m.msg_control = u.b;
		m.msg_controllen = sizeof u.b;
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = 77;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		IOSHOW(sendmsg(sv[0], &m, 0));
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int)) + 64;
		IOSHOW(sendmsg(sv[0], &m, 0));
		c->cmsg_len = 3;
		IOSHOW(sendmsg(sv[0], &m, 0));
		IOSHOW(recv(sv[1], buf, 10, MSG_DONTWAIT));
	}
	closep(sv);

	CASE("scm_rights_dgram_and_seqpacket");
	{
		int types[2] = { SOCK_DGRAM, SOCK_SEQPACKET };
		for (int t = 0; t < 2; t++) {
			sk_pair(types[t], sv);
			io_pipe(p);
			IOSHOW(sk_send_fds(sv[0], &p[1], 1, "rec", 3));
			IOSHOW(sk_send_fds(sv[0], &p[1], 1, "rec2", 4));
			io_close(p[1]);
			n = sk_recv_fds(sv[1], buf, 2, got, &ngot, 4, 0, &fl);
			printf("  %s: recvmsg(2) = %ld, %d fd(s): %s, msg_flags=%s\n",
			       t ? "seqpacket" : "dgram", n, ngot, ngot ? sk_fdkind(got[0]) : "-",
			       sk_msgflags(fl));
			if (ngot && write(got[0], "!", 1) == 1)
				printf("  a byte written through it is read as %ld byte(s)\n",
				       (long)read(p[0], buf, 10));
			for (int k = 0; k < ngot; k++)
				io_close(got[k]);
			closep(sv);
			/* The unread second message held a writer: gone with the sockets. */
			struct pollfd pf = { p[0], POLLIN, 0 };
			poll(&pf, 1, 5000);
			IOSHOW(read(p[0], buf, 10));
			io_close(p[0]);
		}
	}

	CASE("scm_credentials");
	sk_pair(SOCK_DGRAM, sv);
	IOSHOW(send(sv[0], "no passcred", 11, 0));
	show_cred_msg("without SO_PASSCRED", sv[1]);
	{
		int one = 1;
		IOSHOW(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one));
	}
	IOSHOW(send(sv[0], "passcred", 8, 0));
	show_cred_msg("with SO_PASSCRED", sv[1]);
	IOSHOW(send_creds(sv[0], getpid(), 0, 0));
	show_cred_msg("explicit own creds", sv[1]);
	IOSHOW(send_creds(sv[0], getpid(), 123, 456));
	show_cred_msg("explicit uid 123 gid 456 as root", sv[1]);
	IOSHOW(send_creds(sv[0], 0x3fffffff, 0, 0));
	if ((pid = io_fork()) == 0) {
		become(NOBODY);
		errno = 0;
		n = send(sv[0], "from nobody", 11, 0);
		printf("  child as nobody: send = %ld\n", n);
		errno = 0;
		n = send_creds(sv[0], getppid(), NOBODY, NOBODY);
		printf("  child as nobody: creds with the parent's pid = %ld %s\n", n, errname_io(errno));
		errno = 0;
		n = send_creds(sv[0], getpid(), 0, NOBODY);
		printf("  child as nobody: creds with uid 0 = %ld %s\n", n, errname_io(errno));
		errno = 0;
		n = send_creds(sv[0], getpid(), NOBODY, NOBODY);
		printf("  child as nobody: its own creds = %ld %s\n", n, errname_io(errno));
		_exit(0);
	}
	show_status_io("child", io_reap(pid));
	show_cred_msg("from the child", sv[1]);
	show_cred_msg("from the child", sv[1]);
	closep(sv);
	sk_pair(SOCK_STREAM, sv);
	{
		int one = 1;
		setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
		IOSHOW(write(sv[0], "one,", 4));
		IOSHOW(write(sv[0], "two", 3));
		show_cred_msg("stream with SO_PASSCRED", sv[1]);
		/* Writes from two processes are never glued into one read. */
		if ((pid = io_fork()) == 0) {
			if (write(sv[0], "child,", 6) != 6)
				_exit(1);
			_exit(0);
		}
		show_status_io("writer child", io_reap(pid));
		IOSHOW(write(sv[0], "parent", 6));
		show_cred_msg("two writers", sv[1]);
		show_cred_msg("two writers", sv[1]);
	}
	closep(sv);
	/* Set on a listener after listen: what it accepts inherits it. */
	la = sk_path(&a, "passcred");
	{
		int l = sk_listener(SOCK_STREAM, &a, la, 4), one = 1;
		IOSHOW(setsockopt(l, SOL_SOCKET, SO_PASSCRED, &one, sizeof one));
		int to_child[2], to_parent[2];
		io_pipe(to_child);
		io_pipe(to_parent);
		if ((pid = io_fork()) == 0) {
			int c = sk_connect(SOCK_STREAM, &a, la);
			if (write(c, "from a client", 13) != 13)
				_exit(1);
			io_wait(to_child[0]);
			IOSHOW(setsockopt(c, SOL_SOCKET, SO_PASSCRED, &one, sizeof one));
			io_post(to_parent[1]);
			io_wait(to_child[0]);
			show_cred_msg("client, after asking", c);
			_exit(0);
		}
		int s = sk_accept(l);
		show_cred_msg("accepted, the listener asked", s);
		io_post(to_child[1]);
		io_wait(to_parent[0]);
		IOSHOW(write(s, "to the client", 13));
		io_post(to_child[1]);
		show_status_io("client", io_reap(pid));
		closep(to_child);
		closep(to_parent);
		io_close(s);
		io_close(l);
	}

	CASE("scm_peercred");
	sk_pair(SOCK_STREAM, sv);
	show_peercred("socketpair", sv[0]);
	closep(sv);
	{
		int u = sk_socket(SOCK_STREAM);
		show_peercred("unconnected", u);
		io_close(u);
	}
	la = sk_path(&a, "peercred");
	{
		int l = sk_listener(SOCK_STREAM, &a, la, 4);
		if (chmod(a.sun_path, 0777))
			die("chmod");
		show_peercred("listener", l);
		if ((pid = io_fork()) == 0) {
			become(NOBODY);
			int c = sk_connect(SOCK_STREAM, &a, la);
			show_peercred("child (nobody): its connection", c);
			io_close(c);
			_exit(0);
		}
		show_status_io("child", io_reap(pid));
		int s = sk_accept(l);
		show_peercred("accepted from the exited child", s);
		io_close(s);
		int d = sk_socket(SOCK_DGRAM);
		show_peercred("dgram", d);
		io_close(d);
		io_close(l);
	}

	sk_cleanup();
	return 0;
}
