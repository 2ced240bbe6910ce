/* The end of AF_UNIX stream connections: shutdown (SHUT_RD, SHUT_WR, SHUT_RDWR) and what the
 * peer sees, close with the kernel's EOF, ECONNRESET for a close with unread data, EPIPE with
 * SIGPIPE (default, handled, MSG_NOSIGNAL), a peer SIGKILLed while the other side sleeps, and
 * blocked writers released by the reader's close, and a full send buffer freed (EPOLLOUT)
 * by the release of a peer that left it unread.
 */
#include "common.h"
#include <linux/sockios.h>

#define ALL (POLLIN | POLLOUT | POLLRDHUP | POLLPRI)

static volatile int g_sigpipes;

static void on_sigpipe(int sig)
{
	(void)sig;
	g_sigpipes++;
}

/* Block until EOF on fd (the parent closed its end). */
static void io_wait_eof(int fd)
{
	char c;
	while (read(fd, &c, 1) != 0)
		;
}

static void show_data(const char *what, int fd)
{
	char buf[256];
	errno = 0;
	long n = read(fd, buf, sizeof buf);
	if (n < 0)
		printf("  read %s = -1 %s\n", what, errname_io(errno));
	else
		printf("  read %s = %ld \"%.*s\"\n", what, n, (int)n, buf);
}

int main(void)
{
	sk_setup();
	alarm(20);
	int sv[2], p[2];
	long n;
	pid_t pid, killer;
	io_handler(SIGPIPE, on_sigpipe, 0);

	CASE("close_shut_wr");
	sk_pair(SOCK_STREAM, sv);
	IOSHOW(write(sv[0], "last words", 10));
	IOSHOW(shutdown(sv[0], SHUT_WR));
	show_poll1("shut end", sv[0], ALL);
	show_poll1("peer", sv[1], ALL);
	show_data("peer", sv[1]);
	show_data("peer again", sv[1]);
	IOSHOW(write(sv[0], "x", 1));
	printf("  SIGPIPE handled %d time(s)\n", g_sigpipes);
	IOSHOW(write(sv[1], "reply", 5));
	show_data("shut end", sv[0]);
	IOSHOW(shutdown(sv[0], SHUT_WR));
	closep(sv);
	g_sigpipes = 0;

	CASE("close_shut_rd");
	sk_pair(SOCK_STREAM, sv);
	IOSHOW(write(sv[1], "queued before", 13));
	IOSHOW(shutdown(sv[0], SHUT_RD));
	show_poll1("shut end", sv[0], ALL);
	show_poll1("peer", sv[1], ALL);
	show_data("shut end", sv[0]);
	show_data("shut end again", sv[0]);
	IOSHOW(write(sv[1], "after", 5));
	printf("  SIGPIPE handled %d time(s)\n", g_sigpipes);
	IOSHOW(write(sv[0], "still can", 9));
	show_data("peer", sv[1]);
	closep(sv);
	g_sigpipes = 0;

	CASE("close_shut_rdwr_and_errors");
	sk_pair(SOCK_STREAM, sv);
	IOSHOW(shutdown(sv[0], SHUT_RDWR));
	show_poll1("shut end", sv[0], ALL);
	show_poll1("peer", sv[1], ALL);
	show_data("peer", sv[1]);
	IOSHOW(send(sv[1], "x", 1, MSG_NOSIGNAL));
	IOSHOW(send(sv[0], "x", 1, MSG_NOSIGNAL));
	printf("  SIGPIPE handled %d time(s)\n", g_sigpipes);
	IOSHOW(shutdown(sv[0], 3));
	IOSHOW(shutdown(sv[0], -1));
	IOSHOW(shutdown(sv[0], SHUT_RDWR));
	closep(sv);
	{
		int s = sk_socket(SOCK_STREAM);
		IOSHOW(shutdown(s, SHUT_WR));
		struct sockaddr_un a;
		socklen_t la = sk_path(&a, "l");
		int l = sk_listener(SOCK_STREAM, &a, la, 1);
		IOSHOW(shutdown(l, SHUT_RDWR));
		show_poll1("listener after shutdown", l, ALL);
		IOSHOW(connect(s, (struct sockaddr *)&a, la));
		io_close(l);
		io_close(s);
		IOSHOW(shutdown(0, SHUT_RD));
		IOSHOW(shutdown(999, SHUT_RD));
	}

	CASE("close_eof_after_queued_data");
	sk_pair(SOCK_STREAM, sv);
	IOSHOW(write(sv[0], "one", 3));
	IOSHOW(write(sv[0], "two", 3));
	io_close(sv[0]);
	show_poll1("peer", sv[1], ALL);
	show_data("peer", sv[1]);
	show_data("peer", sv[1]);
	show_poll1("peer after EOF", sv[1], ALL);
	IOSHOW(write(sv[1], "x", 1));
	printf("  SIGPIPE handled %d time(s)\n", g_sigpipes);
	IOSHOW(send(sv[1], "x", 1, MSG_NOSIGNAL));
	printf("  SIGPIPE handled %d time(s) after MSG_NOSIGNAL\n", g_sigpipes);
	io_close(sv[1]);
	g_sigpipes = 0;

	CASE("close_with_unread_data_econnreset");
	sk_pair(SOCK_STREAM, sv);
	IOSHOW(write(sv[1], "never read", 10));
	IOSHOW(write(sv[0], "for the peer", 12));
	io_close(sv[0]);
	show_poll1("peer", sv[1], ALL);
	sk_show_opt("SO_ERROR (read and cleared)", sv[1], SOL_SOCKET, SO_ERROR);
	sk_show_opt("SO_ERROR again", sv[1], SOL_SOCKET, SO_ERROR);
	show_data("peer", sv[1]);
	show_data("peer", sv[1]);
	io_close(sv[1]);
	sk_pair(SOCK_STREAM, sv);
	IOSHOW(write(sv[1], "never read", 10));
	io_close(sv[0]);
	show_data("peer, nothing queued for it", sv[1]);
	show_data("peer again", sv[1]);
	IOSHOW(send(sv[1], "x", 1, MSG_NOSIGNAL));
	io_close(sv[1]);

	CASE("close_with_full_send_buffer_frees_it");
	/* The peer's release drops what it left unread (unix_release_sock): the send buffer is
	 * free again (POLLOUT, EPOLLOUT for a set waiting on it, SIOCOUTQ 0), and a stream or
	 * seqpacket socket has ECONNRESET pending. */
	for (int t = 0; t < 3; t++) {
		static const int types[] = { SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM };
		static const char *const names[] = { "stream", "seqpacket", "datagram" };
		int outq = -1;
		sk_pair(types[t], sv);
		printf("  %s: filled %s\n", names[t], io_fill(sv[1], 4096) > 0 ? "yes" : "no");
		int ep = epoll_create1(EPOLL_CLOEXEC);
		if (ep < 0)
			die("epoll_create1");
		ep_add(ep, sv[1], EPOLLIN | EPOLLOUT | EPOLLRDHUP, 1);
		ep_show("full", ep, 4, 0);
		io_close(sv[0]);
		ep_show("peer closed", ep, 4, 1000);
		show_poll1("peer closed", sv[1], ALL);
		IOSHOW(ioctl(sv[1], SIOCOUTQ, &outq));
		printf("  SIOCOUTQ %d\n", outq);
		sk_show_opt("SO_ERROR", sv[1], SOL_SOCKET, SO_ERROR);
		io_close(ep);
		io_close(sv[1]);
	}

	CASE("close_sigpipe_default_kills");
	sk_pair(SOCK_STREAM, sv);
	io_close(sv[1]);
	if ((pid = io_fork()) == 0) {
		signal(SIGPIPE, SIG_DFL);
		n = write(sv[0], "x", 1);
		printf("  child survived: write = %ld\n", n);
		_exit(0);
	}
	show_status_io("child writing to a closed peer", io_reap(pid));
	if ((pid = io_fork()) == 0) {
		signal(SIGPIPE, SIG_DFL);
		errno = 0;
		n = send(sv[0], "x", 1, MSG_NOSIGNAL);
		printf("  child: send(MSG_NOSIGNAL) = %ld %s\n", n, errname_io(errno));
		struct msghdr m;
		struct iovec io = { "y", 1 };
		memset(&m, 0, sizeof m);
		m.msg_iov = &io;
		m.msg_iovlen = 1;
		errno = 0;
		n = sendmsg(sv[0], &m, MSG_NOSIGNAL);
		printf("  child: sendmsg(MSG_NOSIGNAL) = %ld %s\n", n, errname_io(errno));
		n = sendmsg(sv[0], &m, 0);
		printf("  child survived sendmsg(0): %ld\n", n);
		_exit(0);
	}
	show_status_io("child", io_reap(pid));
	if ((pid = io_fork()) == 0) {
		sigset_t s;
		sigemptyset(&s);
		sigaddset(&s, SIGPIPE);
		sigprocmask(SIG_BLOCK, &s, NULL);
		signal(SIGPIPE, SIG_DFL);
		errno = 0;
		n = write(sv[0], "x", 1);
		sigpending(&s);
		printf("  child with SIGPIPE blocked: write = %ld %s, SIGPIPE pending: %d\n", n,
		       errname_io(errno), sigismember(&s, SIGPIPE));
		_exit(0);
	}
	show_status_io("child", io_reap(pid));
	io_close(sv[0]);

	CASE("close_dup_and_fork_copies_keep_it_open");
	sk_pair(SOCK_STREAM, sv);
	{
		char c;
		int d = dup(sv[0]);
		io_close(sv[0]);
		IOSHOW(recv(sv[1], &c, 1, MSG_DONTWAIT));
		io_pipe(p);
		if ((pid = io_fork()) == 0) {
			io_close(p[1]);
			io_wait_eof(p[0]);
			_exit(0);
		}
		io_close(p[0]);
		io_close(d);
		IOSHOW(recv(sv[1], &c, 1, MSG_DONTWAIT));
		io_close(p[1]);
		show_status_io("child holding the last copy", io_reap(pid));
		IOSHOW(recv(sv[1], &c, 1, MSG_DONTWAIT));
		io_close(sv[1]);
	}

	CASE("close_peer_sigkilled_after_writing");
	sk_pair(SOCK_STREAM, sv);
	io_pipe(p);
	if ((pid = io_fork()) == 0) {
		io_close(sv[0]);
		io_close(p[0]);
		if (write(sv[1], "partial", 7) != 7)
			_exit(1);
		io_post(p[1]);
		for (;;)
			pause();
	}
	io_close(sv[1]);
	io_close(p[1]);
	io_wait(p[0]);
	kill(pid, SIGKILL);
	show_status_io("child", io_reap(pid));
	show_data("survivor", sv[0]);
	show_data("survivor", sv[0]);
	IOSHOW(send(sv[0], "x", 1, MSG_NOSIGNAL));
	io_close(sv[0]);
	io_close(p[0]);

	CASE("close_peer_sigkilled_while_reader_sleeps");
	sk_pair(SOCK_STREAM, sv);
	io_pipe(p);
	if ((pid = io_fork()) == 0) {
		io_close(sv[0]);
		io_close(p[0]);
		io_post(p[1]);
		for (;;)
			pause();
	}
	io_close(sv[1]);
	io_close(p[1]);
	io_wait(p[0]);
	{
		pid_t me = getpid();
		if ((killer = fork()) == 0) {
			io_wait_sleeping(me);
			kill(pid, SIGKILL);
			_exit(0);
		}
	}
	show_data("sleeping reader", sv[0]);
	show_status_io("peer", io_reap(pid));
	show_status_io("killer", io_reap(killer));
	io_close(sv[0]);
	io_close(p[0]);

	CASE("close_peer_sigkilled_with_unread_data");
	sk_pair(SOCK_STREAM, sv);
	io_pipe(p);
	IOSHOW(write(sv[0], "unread by the victim", 20));
	if ((pid = io_fork()) == 0) {
		io_close(sv[0]);
		io_close(p[0]);
		io_post(p[1]);
		for (;;)
			pause();
	}
	io_close(sv[1]);
	io_close(p[1]);
	io_wait(p[0]);
	kill(pid, SIGKILL);
	show_status_io("child", io_reap(pid));
	show_poll1("survivor", sv[0], ALL);
	show_data("survivor", sv[0]);
	show_data("survivor", sv[0]);
	io_close(sv[0]);
	io_close(p[0]);

	CASE("close_blocked_writer_released_by_reader_close");
	sk_pair(SOCK_STREAM, sv);
	if ((pid = io_fork()) == 0) {
		static char big[400000];
		io_close(sv[0]);
		errno = 0;
		n = send(sv[1], big, sizeof big, MSG_NOSIGNAL);
		/* The count is what fitted, which is the kernel's skb accounting (README). */
		printf("  child: send = %s %s\n", n > 0 && n < (long)sizeof big ? "a part" : "?",
		       errname_io(errno));
		errno = 0;
		n = send(sv[1], big, sizeof big, MSG_NOSIGNAL);
		printf("  child: send again = %ld %s\n", n, errname_io(errno));
		_exit(0);
	}
	io_wait_sleeping(pid);
	printf("  queued before the close: at least 64 KiB: %s\n", io_nread(sv[0]) >= 65536 ? "yes" : "no");
	io_close(sv[0]);
	show_status_io("child", io_reap(pid));

	CASE("close_blocked_reader_released_by_shutdown");
	sk_pair(SOCK_STREAM, sv);
	if ((pid = io_fork()) == 0) {
		char c[8];
		errno = 0;
		n = read(sv[1], c, sizeof c);
		printf("  child: read = %ld %s\n", n, errname_io(errno));
		_exit(0);
	}
	io_wait_sleeping(pid);
	n = shutdown(sv[1], SHUT_RD);
	show_status_io("child", io_reap(pid));
	printf("  parent: shutdown(SHUT_RD) = %ld\n", n);
	closep(sv);

	sk_cleanup();
	return 0;
}
