/* AF_UNIX datagram sockets with names: the receive-queue limit for unconnected senders
 * (net.unix.max_dgram_qlen) and its absence between mutual peers, a receiver's SHUT_RD,
 * sending to oneself, SCM_CREDENTIALS from another process, a reconnect dropping the
 * queue, an unlinked and rebound name, a receiver killed by SIGKILL, SO_RCVTIMEO and a
 * short address buffer, epoll/poll woken by a datagram from another process, and the socket
 * file's write permission for its owner, others and root. */
#include "common.h"
#include <sys/epoll.h>

/* recvfrom into a buffer, printed with the sender's address. */
static long show_from(const char *what, int fd, int flags)
{
	char buf[512];
	struct sockaddr_un from;
	socklen_t fl = sizeof from;
	memset(&from, 0x55, sizeof from);
	errno = 0;
	long n = recvfrom(fd, buf, sizeof buf, flags, (struct sockaddr *)&from, &fl);
	if (n < 0)
		printf("  %s = -1 %s\n", what, errname_io(errno));
	else
		printf("  %s = %ld \"%.*s\" from %s\n", what, n, (int)n, buf, sk_name(&from, fl));
	return n;
}

/* 1-byte datagrams sent with MSG_DONTWAIT (to addr unless it is NULL) until one fails. */
static int fill(int s, const struct sockaddr_un *a, socklen_t la)
{
	int count = 0;
	while (sendto(s, "q", 1, MSG_DONTWAIT, (const struct sockaddr *)a, a ? la : 0) == 1)
		count++;
	return count;
}

/* A sendto from a child running as uid (0: root). */
static void sendto_as(uid_t uid, const struct sockaddr_un *a, socklen_t la)
{
	pid_t pid = io_fork();
	if (pid == 0) {
		if (uid)
			become(uid);
		int q = sk_socket(SOCK_DGRAM);
		errno = 0;
		long k = sendto(q, "p", 1, 0, (const struct sockaddr *)a, la);
		printf("  sendto as uid %u = %ld %s\n", (unsigned)uid, k, errname_io(errno));
		_exit(0);
	}
	show_status_io("child", io_reap(pid));
}

static int drain(int fd)
{
	char buf[64];
	int count = 0;
	while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) >= 0)
		count++;
	return count;
}

int main(void)
{
	sk_setup();
	alarm(20);
	signal(SIGPIPE, SIG_IGN);
	int r, s, t, n;
	char buf[512];
	pid_t pid;
	struct sockaddr_un a, b, c;
	socklen_t la, lb, lc;

	CASE("dgram_named_qlen_unconnected");
	la = sk_path(&a, "rcv");
	r = sk_listener(SOCK_DGRAM, &a, la, -1);
	s = sk_socket(SOCK_DGRAM);
	n = fill(s, &a, la);
	printf("  queued before %s: %d\n", errname_io(errno), n);
	show_poll1("receiver", r, POLLIN | POLLOUT);
	show_poll1("unconnected sender", s, POLLOUT);
	t = sk_connect(SOCK_DGRAM, &a, la);
	show_poll1("connected sender", t, POLLOUT);
	IOSHOW(send(t, "x", 1, MSG_DONTWAIT));
	if ((pid = io_fork()) == 0) {
		errno = 0;
		long k = sendto(s, "late", 4, 0, (struct sockaddr *)&a, la);
		printf("  child: blocked sendto = %ld %s\n", k, errname_io(errno));
		_exit(0);
	}
	io_wait_sleeping(pid);
	/* Printed after the child's line: which of the two runs first after the wake is not fixed. */
	n = recv(r, buf, sizeof buf, 0);
	show_status_io("child", io_reap(pid));
	printf("  recv one = %d \"%.*s\"\n", n, n > 0 ? n : 0, buf);
	printf("  drained %d\n", drain(r));
	show_poll1("connected sender after the drain", t, POLLOUT);
	io_close(t);
	io_close(s);

	CASE("dgram_named_mutual_peers");
	lb = sk_path(&b, "mutual");
	s = sk_listener(SOCK_DGRAM, &b, lb, -1);
	IOSHOW(connect(r, (struct sockaddr *)&b, lb));
	IOSHOW(connect(s, (struct sockaddr *)&a, la));
	n = fill(s, NULL, 0);
	/* Between mutual peers only the sender's send buffer limits. */
	printf("  queued before %s: %d\n", errname_io(errno), n);
	printf("  drained all: %s\n", drain(r) == n ? "yes" : "no");
	IOSHOW(send(r, "back", 4, 0));
	show_from("reply", s, MSG_DONTWAIT);
	io_close(s);
	io_close(r);
	unlink(a.sun_path);
	unlink(b.sun_path);

	CASE("dgram_named_receiver_shut_rd");
	r = sk_listener(SOCK_DGRAM, &a, la, -1);
	s = sk_socket(SOCK_DGRAM);
	IOSHOW(sendto(s, "before", 6, 0, (struct sockaddr *)&a, la));
	IOSHOW(shutdown(r, SHUT_RD));
	IOSHOW(sendto(s, "after", 5, 0, (struct sockaddr *)&a, la));
	show_poll1("receiver", r, POLLIN | POLLRDHUP);
	sk_recv("recv queued", r, 100, MSG_DONTWAIT);
	sk_recv("recv empty", r, 100, MSG_DONTWAIT);
	io_close(s);
	io_close(r);
	unlink(a.sun_path);

	CASE("dgram_named_send_to_self");
	r = sk_listener(SOCK_DGRAM, &a, la, -1);
	IOSHOW(sendto(r, "me", 2, 0, (struct sockaddr *)&a, la));
	show_from("recvfrom", r, MSG_DONTWAIT);
	IOSHOW(connect(r, (struct sockaddr *)&a, la));
	IOSHOW(send(r, "myself", 6, 0));
	sk_show_names("self-connected", r);
	show_from("recvfrom", r, MSG_DONTWAIT);
	io_close(r);
	unlink(a.sun_path);

	CASE("dgram_named_passcred_from_child");
	r = sk_listener(SOCK_DGRAM, &a, la, -1);
	{
		int one = 1;
		IOSHOW(setsockopt(r, SOL_SOCKET, SO_PASSCRED, &one, sizeof one));
	}
	if ((pid = io_fork()) == 0) {
		int q = sk_socket(SOCK_DGRAM);
		_exit(sendto(q, "cred", 4, 0, (struct sockaddr *)&a, la) == 4 ? 0 : 1);
	}
	show_status_io("child", io_reap(pid));
	{
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(struct ucred))];
		} ctl;
		struct sockaddr_un from;
		struct iovec io = { buf, sizeof buf };
		struct msghdr m;
		memset(&m, 0, sizeof m);
		m.msg_name = &from;
		m.msg_namelen = sizeof from;
		m.msg_iov = &io;
		m.msg_iovlen = 1;
		m.msg_control = &ctl;
		m.msg_controllen = sizeof ctl;
		long k = IOSHOW(recvmsg(r, &m, MSG_DONTWAIT));
		struct cmsghdr *h = CMSG_FIRSTHDR(&m);
		printf("  data \"%.*s\" from %s\n", (int)(k > 0 ? k : 0), buf, sk_name(&from, m.msg_namelen));
		if (h && h->cmsg_type == SCM_CREDENTIALS) {
			struct ucred u;
			memcpy(&u, CMSG_DATA(h), sizeof u);
			printf("  SCM_CREDENTIALS: pid is the child: %s, uid %s, gid %s\n",
			       u.pid == pid ? "yes" : "no", u.uid == getuid() ? "ours" : "other",
			       u.gid == getgid() ? "ours" : "other");
		} else {
			printf("  no SCM_CREDENTIALS\n");
		}
	}
	io_close(r);
	unlink(a.sun_path);

	CASE("dgram_named_reconnect_drops_queue");
	r = sk_listener(SOCK_DGRAM, &a, la, -1);
	lb = sk_path(&b, "first");
	s = sk_listener(SOCK_DGRAM, &b, lb, -1);
	lc = sk_path(&c, "second");
	t = sk_listener(SOCK_DGRAM, &c, lc, -1);
	IOSHOW(connect(s, (struct sockaddr *)&a, la));
	IOSHOW(sendto(r, "queued", 6, 0, (struct sockaddr *)&b, lb));
	printf("  FIONREAD before = %d\n", io_nread(s));
	IOSHOW(connect(s, (struct sockaddr *)&a, la));
	printf("  FIONREAD after connecting to the same peer = %d\n", io_nread(s));
	IOSHOW(connect(s, (struct sockaddr *)&c, lc));
	printf("  FIONREAD after connecting elsewhere = %d\n", io_nread(s));
	sk_recv("recv", s, 100, MSG_DONTWAIT);
	IOSHOW(sendto(r, "refused", 7, 0, (struct sockaddr *)&b, lb));
	IOSHOW(sendto(t, "accepted", 8, 0, (struct sockaddr *)&b, lb));
	show_from("recvfrom", s, MSG_DONTWAIT);
	io_close(t);
	io_close(s);
	io_close(r);
	unlink(a.sun_path);
	unlink(b.sun_path);
	unlink(c.sun_path);

	CASE("dgram_named_unlinked_and_rebound");
	r = sk_listener(SOCK_DGRAM, &a, la, -1);
	s = sk_socket(SOCK_DGRAM);
	IOSHOW(sendto(s, "one", 3, 0, (struct sockaddr *)&a, la));
	IOSHOW(unlink(a.sun_path));
	IOSHOW(sendto(s, "two", 3, 0, (struct sockaddr *)&a, la));
	t = sk_listener(SOCK_DGRAM, &a, la, -1);
	IOSHOW(sendto(s, "three", 5, 0, (struct sockaddr *)&a, la));
	sk_recv("old socket", r, 100, MSG_DONTWAIT);
	sk_recv("old socket", r, 100, MSG_DONTWAIT);
	sk_recv("new socket", t, 100, MSG_DONTWAIT);
	sk_show_names("old socket", r);
	io_close(t);
	io_close(s);
	io_close(r);
	unlink(a.sun_path);

	CASE("dgram_named_receiver_killed");
	{
		int ready[2];
		io_pipe(ready);
		if ((pid = io_fork()) == 0) {
			int q = sk_listener(SOCK_DGRAM, &a, la, -1);
			(void)q;
			io_post(ready[1]);
			for (;;)
				pause();
		}
		io_wait(ready[0]);
		closep(ready);
	}
	s = sk_connect(SOCK_DGRAM, &a, la);
	IOSHOW(send(s, "to the doomed", 13, 0));
	io_wait_sleeping(pid); /* in pause(), its calls done (and traced) */
	kill(pid, SIGKILL);
	show_status_io("receiver", io_reap(pid));
	IOSHOW(send(s, "x", 1, 0));
	IOSHOW(send(s, "x", 1, 0));
	t = sk_socket(SOCK_DGRAM);
	IOSHOW(sendto(t, "x", 1, 0, (struct sockaddr *)&a, la));
	IOSHOW(connect(t, (struct sockaddr *)&a, la));
	io_close(t);
	io_close(s);
	unlink(a.sun_path);

	CASE("dgram_named_rcvtimeo_short_name");
	r = sk_listener(SOCK_DGRAM, &a, la, -1);
	{
		struct timeval tv = { 0, 50 * 1000 };
		struct timespec t0;
		IOSHOW(setsockopt(r, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
		clock_gettime(CLOCK_MONOTONIC, &t0);
		IOSHOW(recv(r, buf, sizeof buf, 0));
		long ms = ms_since(&t0);
		printf("  waited about the timeout: %s\n", ms >= 40 && ms < 2000 ? "yes" : "no");
	}
	lb = sk_path(&b, "a-sender-with-a-rather-long-name");
	s = sk_listener(SOCK_DGRAM, &b, lb, -1);
	IOSHOW(sendto(s, "named", 5, 0, (struct sockaddr *)&a, la));
	{
		struct sockaddr_un from;
		struct iovec io = { buf, sizeof buf };
		struct msghdr m;
		memset(&m, 0, sizeof m);
		memset(&from, 0, sizeof from);
		m.msg_name = &from;
		m.msg_namelen = 5;
		m.msg_iov = &io;
		m.msg_iovlen = 1;
		IOSHOW(recvmsg(r, &m, 0));
		printf("  msg_namelen %s the full address, family %d, copied \"%.3s\", next byte %d\n",
		       m.msg_namelen == lb ? "is" : "is not", from.sun_family, from.sun_path, from.sun_path[3]);
	}
	io_close(s);
	io_close(r);
	unlink(a.sun_path);
	unlink(b.sun_path);

	CASE("dgram_named_epoll_poll_woken");
	r = sk_listener(SOCK_DGRAM, &a, la, -1);
	{
		int ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u32 = 7 }, out[2];
		IOSHOW(epoll_ctl(ep, EPOLL_CTL_ADD, r, &ev));
		pid_t me = getpid();
		int go[2];
		io_pipe(go);
		if ((pid = io_fork()) == 0) {
			int q = sk_socket(SOCK_DGRAM);
			for (int i = 0; i < 2; i++) {
				if (i)
					io_wait(go[0]);
				io_wait_sleeping(me);
				if (sendto(q, i ? "poll" : "epoll", i ? 4 : 5, 0, (struct sockaddr *)&a, la) < 0)
					_exit(1);
			}
			_exit(0);
		}
		memset(out, 0, sizeof out);
		IOSHOW(epoll_wait(ep, out, 2, 5000));
		printf("  events %s data %u\n", pollbits(out[0].events), out[0].data.u32);
		IOSHOW(epoll_wait(ep, out, 2, 0));
		sk_recv("recv", r, 100, 0);
		io_post(go[1]);
		struct pollfd p = { r, POLLIN, 0 };
		IOSHOW(poll(&p, 1, 5000));
		printf("  revents %s\n", pollbits(p.revents));
		show_status_io("sender", io_reap(pid));
		IOSHOW(epoll_wait(ep, out, 2, 0));
		printf("  events %s\n", pollbits(out[0].events));
		sk_recv("recv", r, 100, 0);
		closep(go);
		io_close(ep);
	}
	io_close(r);
	unlink(a.sun_path);

	CASE("dgram_named_permissions");
	r = sk_listener(SOCK_DGRAM, &a, la, -1);
	IOSHOW(chmod(a.sun_path, 0600));
	sendto_as(NOBODY, &a, la);
	sendto_as(0, &a, la);
	IOSHOW(chmod(a.sun_path, 0400));
	sendto_as(0, &a, la);
	IOSHOW(chmod(a.sun_path, 0602));
	sendto_as(NOBODY, &a, la);
	IOSHOW(chmod(a.sun_path, 0604));
	sendto_as(NOBODY, &a, la);
	IOSHOW(chown(a.sun_path, NOBODY, NOBODY));
	IOSHOW(chmod(a.sun_path, 0402));
	sendto_as(NOBODY, &a, la);
	IOSHOW(chmod(a.sun_path, 0200));
	sendto_as(NOBODY, &a, la);
	IOSHOW(chmod(SK_DIR, 0700));
	IOSHOW(chmod(a.sun_path, 0666));
	sendto_as(NOBODY, &a, la);
	IOSHOW(chmod(SK_DIR, 0755));
	printf("  datagrams received: %d\n", drain(r));
	io_close(r);

	sk_cleanup();
	return 0;
}
