/* AF_UNIX ancillary-data rules of net/unix/af_unix.c and net/core/scm.c:
 * - a message sent while neither end had SO_PASSCRED carries no credentials
 *   (maybe_add_creds): read after the receiver set it, it reports the "unknown" ones
 *   (pid 0, the overflow uid and gid), for stream and seqpacket, write and sendmsg; one sent
 *   while the sender itself had SO_PASSCRED carries the sender's;
 * - a recvmsg with no data buffer still takes the next message's fds (and its
 *   credentials): a stream leaves the data, a record socket drops it with MSG_TRUNC;
 *   a peek takes copies;
 * - SCM_RIGHTS with no fds carries nothing: the data coalesces with what follows;
 * - credentials across PID namespaces: SO_PEERCRED and SCM_CREDENTIALS name a peer
 *   as the reader's namespace sees it (0 when it cannot), also for a child cloned with
 *   CLONE_NEWPID onto a small stack of its own;
 * - a non-blocking send whose control data the kernel refuses says so (ESRCH for the
 *   credentials of a reaped process, EBADF) even while the queue is full.
 * Run as root. */
#include "common.h"
#include <sched.h>

#define OVERFLOW_ID 65534

static void show_msg(const char *what, int s, size_t cap, int flags)
{
	char data[64];
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} u;
	struct iovec io = { data, cap };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	memset(&u, 0, sizeof u);
	m.msg_iov = &io;
	m.msg_iovlen = 1;
	m.msg_control = u.buf;
	m.msg_controllen = sizeof u.buf;
	errno = 0;
	long n = recvmsg(s, &m, flags);
	if (n < 0) {
		printf("  %s: recvmsg = -1 %s\n", what, errname_io(errno));
		return;
	}
	long shown = n < (long)cap ? n : (long)cap;
	printf("  %s: recvmsg = %ld \"%.*s\" msg_flags=%s\n", what, n, (int)shown, data,
	       sk_msgflags(m.msg_flags));
	int any = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		any = 1;
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred cr;
			memcpy(&cr, CMSG_DATA(c), sizeof cr);
			printf("    SCM_CREDENTIALS pid=%s uid=%u gid=%u\n", pidrel(cr.pid), cr.uid, cr.gid);
		} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			int fds[4];
			memcpy(fds, CMSG_DATA(c), sizeof(int) * (k < 4 ? k : 4));
			printf("    SCM_RIGHTS %d fds: %s\n", k, k > 0 ? sk_fdkind(fds[0]) : "-");
			for (int i = 0; i < k && i < 4; i++)
				close(fds[i]);
		} else {
			printf("    cmsg level %d type %d\n", c->cmsg_level, c->cmsg_type);
		}
	}
	if (!any)
		printf("    no control message\n");
}

static void set_passcred(int s, int on)
{
	if (setsockopt(s, SOL_SOCKET, SO_PASSCRED, &on, sizeof on))
		die("SO_PASSCRED");
}

static long send_plain(int s, const char *text)
{
	struct iovec io = { (void *)text, strlen(text) };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = &io;
	m.msg_iovlen = 1;
	return sendmsg(s, &m, 0);
}

static void creds_before_passcred(int type, const char *name)
{
	char what[96];
	int sv[2];
	sk_pair(type, sv);
	snprintf(what, sizeof what, "%s_unknown_creds", name);
	CASE(what);
	SHOW(write(sv[0], "before", 6));
	SHOW(send_plain(sv[0], "sendmsg before"));
	set_passcred(sv[1], 1);
	SHOW(write(sv[0], "after", 5));
	show_msg("first", sv[1], 64, MSG_DONTWAIT);
	show_msg("second", sv[1], 64, MSG_DONTWAIT);
	show_msg("third", sv[1], 64, MSG_DONTWAIT);
	show_msg("none left", sv[1], 64, MSG_DONTWAIT);
	close(sv[0]);
	close(sv[1]);

	snprintf(what, sizeof what, "%s_sender_passcred", name);
	CASE(what);
	sk_pair(type, sv);
	set_passcred(sv[0], 1);
	SHOW(write(sv[0], "sender asked", 12));
	SHOW(write(sv[1], "other way", 9));
	set_passcred(sv[1], 1);
	show_msg("receiver", sv[1], 64, MSG_DONTWAIT);
	show_msg("sender's side", sv[0], 64, MSG_DONTWAIT);
	close(sv[0]);
	close(sv[1]);
}

static void empty_recv(int type, const char *name)
{
	char what[96];
	int sv[2];
	sk_pair(type, sv);
	int p[2];
	io_pipe(p);
	snprintf(what, sizeof what, "%s_empty_iov_fds", name);
	CASE(what);
	SHOW(sk_send_fds(sv[0], &p[0], 1, "xy", 2));
	SHOW(write(sv[0], "zw", 2));
	show_msg("peek, no buffer", sv[1], 0, MSG_PEEK | MSG_DONTWAIT);
	show_msg("no buffer", sv[1], 0, MSG_DONTWAIT);
	show_msg("then", sv[1], 64, MSG_DONTWAIT);
	show_msg("then", sv[1], 64, MSG_DONTWAIT);
	/* With credentials asked for: they come with an empty read too. */
	set_passcred(sv[1], 1);
	SHOW(sk_send_fds(sv[0], &p[1], 1, "cred", 4));
	show_msg("no buffer, SO_PASSCRED", sv[1], 0, MSG_DONTWAIT);
	show_msg("then", sv[1], 64, MSG_DONTWAIT);
	/* recv(…, 0, MSG_TRUNC) of a record reports its length; the fds are dropped. */
	SHOW(sk_send_fds(sv[0], &p[0], 1, "trunc", 5));
	char c;
	IOSHOW(recv(sv[1], &c, 0, MSG_TRUNC | MSG_DONTWAIT));
	show_msg("after recv", sv[1], 64, MSG_DONTWAIT);
	closep(p);
	close(sv[0]);
	close(sv[1]);
}

/* SCM_RIGHTS with `extra` bytes past the header but no whole fd. */
static long send_no_fds(int s, const char *text, int extra)
{
	return sk_send_cmsg(s, text, strlen(text), SCM_RIGHTS, NULL, extra, 0);
}

static void zero_fds(void)
{
	int sv[2];
	CASE("stream_zero_fds_coalesce");
	sk_pair(SOCK_STREAM, sv);
	SHOW(send_no_fds(sv[0], "ab", 0));
	SHOW(write(sv[0], "cd", 2));
	SHOW(send_no_fds(sv[0], "ef", 3));
	SHOW(write(sv[0], "gh", 2));
	show_msg("one read", sv[1], 64, MSG_DONTWAIT);
	show_msg("nothing left", sv[1], 64, MSG_DONTWAIT);
	close(sv[0]);
	close(sv[1]);

	CASE("seqpacket_zero_fds");
	sk_pair(SOCK_SEQPACKET, sv);
	SHOW(send_no_fds(sv[0], "ab", 0));
	SHOW(write(sv[0], "cd", 2));
	show_msg("record", sv[1], 64, MSG_DONTWAIT);
	show_msg("record", sv[1], 64, MSG_DONTWAIT);
	close(sv[0]);
	close(sv[1]);
}

/* ---- PID namespaces ---- */

struct ns_args {
	struct sockaddr_un addr;
	socklen_t len;
	int report;
	int pair;
};

/* Cloned into a new PID namespace on a 4 KiB stack: connects, says who it is, reads SO_PEERCRED
 * of the socketpair its parent made, waits for EOF. */
static int ns_connector(void *arg)
{
	struct ns_args *a = arg;
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a->addr, a->len))
		_exit(3);
	struct ucred cr;
	socklen_t l = sizeof cr;
	int msg[4] = { getpid(), -1, -1, -1 };
	if (getsockopt(a->pair, SOL_SOCKET, SO_PEERCRED, &cr, &l) == 0) {
		msg[1] = cr.pid;
		msg[2] = cr.uid;
		msg[3] = cr.gid;
	}
	if (write(a->report, msg, sizeof msg) != sizeof msg)
		_exit(4);
	char c;
	while (read(s, &c, 1) > 0)
		;
	_exit(0);
}

static void pid_namespaces(void)
{
	CASE("peercred_other_pid_ns");
	struct ns_args a;
	a.len = sk_path(&a.addr, "nsl");
	int l = sk_listener(SOCK_STREAM, &a.addr, a.len, 5);
	/* The child reports over a socket pair: `ipcshim diff` pairs processes by their pid, which
	 * the shim's trace gives as the child's own namespace sees it. */
	int rp[2], sv[2];
	sk_pair(SOCK_STREAM, rp);
	sk_pair(SOCK_STREAM, sv);
	a.report = rp[1];
	a.pair = sv[1];
	size_t stack = 4096;
	char *st = mmap(NULL, stack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (st == MAP_FAILED)
		die("mmap");
	pid_t child = clone(ns_connector, st + stack, CLONE_NEWPID | SIGCHLD, &a);
	if (child < 0)
		die("clone");
	g_child = child;
	close(rp[1]);
	int msg[4] = { 0, 0, 0, 0 };
	long n = read(rp[0], msg, sizeof msg);
	printf("  child reports: %ld bytes, its own pid %d, its SO_PEERCRED of our pair: pid %s uid %d gid %d\n",
	       n, msg[0], pidrel(msg[1]), msg[2], msg[3]);
	int c = sk_accept(l);
	struct ucred cr;
	socklen_t cl = sizeof cr;
	SHOW(getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl));
	printf("  accepted SO_PEERCRED: pid=%s uid=%u gid=%u\n", pidrel(cr.pid), cr.uid, cr.gid);
	close(c);
	show_status("child", wait_child(child));
	close(rp[0]);
	close(l);
	close(sv[0]);
	close(sv[1]);
	munmap(st, stack);

	CASE("scm_credentials_other_pid_ns");
	int types[2] = { SOCK_STREAM, SOCK_SEQPACKET };
	for (int t = 0; t < 2; t++) {
		sk_pair(types[t], sv);
		set_passcred(sv[0], 1);
		set_passcred(sv[1], 1);
		fflush(stdout);
		child = syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0);
		if (child < 0)
			die("clone");
		if (child == 0) {
			/* From the new namespace, the parent is not there: pid 0. */
			if (write(sv[1], "from the child", 14) != 14)
				_exit(3);
			show_msg(t ? "child, seqpacket" : "child, stream", sv[1], 64, 0);
			_exit(0);
		}
		g_child = child;
		show_msg(t ? "parent, seqpacket" : "parent, stream", sv[0], 64, 0);
		/* Printed once the child, which prints what it got, is gone. */
		long w = write(sv[0], "from the parent", 15);
		show_status("child", wait_child(child));
		printf("  the parent's write = %ld\n", w);
		close(sv[0]);
		close(sv[1]);
	}
}

/* ---- refused control data on a full queue ---- */

static long send_creds_nb(int s, pid_t pid)
{
	static char data[512];
	struct ucred cr = { pid, getuid(), getgid() };
	return sk_send_cmsg(s, data, sizeof data, SCM_CREDENTIALS, &cr, sizeof cr, MSG_DONTWAIT);
}

static void full_queue_refusals(void)
{
	CASE("full_queue_creds_of_reaped_child");
	int sv[2];
	sk_pair(SOCK_STREAM, sv);
	int fl = fcntl(sv[0], F_GETFL);
	fcntl(sv[0], F_SETFL, fl | O_NONBLOCK);
	char junk[4096];
	memset(junk, 'j', sizeof junk);
	long sent = 0;
	while (write(sv[0], junk, sizeof junk) > 0 && sent < 100000)
		sent++;
	printf("  queue full: %s\n", errname_io(errno));
	fflush(stdout);
	pid_t child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		pause();
		_exit(0);
	}
	g_child = child;
	errno = 0;
	long r = send_creds_nb(sv[0], child);
	printf("  credentials of a live child: %ld %s\n", r, r < 0 ? errname_io(errno) : "");
	kill(child, SIGKILL);
	wait_child(child);
	/* Retried as a program racing the reap would: it ends with the kernel's ESRCH. */
	int tries = 0;
	do {
		errno = 0;
		r = send_creds_nb(sv[0], child);
	} while (r < 0 && errno == EAGAIN && ++tries < 1000);
	printf("  credentials of the reaped child: %ld %s%s\n", r, r < 0 ? errname_io(errno) : "",
	       tries >= 1000 ? " (still EAGAIN after 1000 tries)" : "");
	int bad = 999;
	errno = 0;
	r = sk_send_fds(sv[0], &bad, 1, "x", 1);
	printf("  a bad fd: %ld %s\n", r, r < 0 ? errname_io(errno) : "");
	int good = 0;
	errno = 0;
	r = sk_send_fds(sv[0], &good, 1, "x", 1);
	printf("  a good fd: %ld %s\n", r, r < 0 ? errname_io(errno) : "");
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	sk_setup();
	creds_before_passcred(SOCK_STREAM, "stream");
	creds_before_passcred(SOCK_SEQPACKET, "seqpacket");
	empty_recv(SOCK_STREAM, "stream");
	empty_recv(SOCK_SEQPACKET, "seqpacket");
	empty_recv(SOCK_DGRAM, "dgram");
	zero_fds();
	pid_namespaces();
	full_queue_refusals();
	sk_cleanup();
	return 0;
}
