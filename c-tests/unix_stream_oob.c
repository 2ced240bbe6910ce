/* Out-of-band data on AF_UNIX stream sockets (MSG_OOB): the last byte of a send goes out of
 * band, reads stop at its mark, recv(MSG_OOB) takes it (MSG_OOB in recvmsg's flags), a read
 * past it drops it, a newer one makes the older one data, SO_OOBINLINE reads it with the
 * data, SIOCATMARK, FIONREAD, POLLPRI and select's exceptfds, SIGURG to the F_SETOWN owner,
 * MSG_PEEK and MSG_WAITALL at the mark, EFAULT, and EOPNOTSUPP/EINVAL where there is none. */
#include "common.h"
#include <sys/socket.h>

static int g_urg;

static void on_urg(int s)
{
	(void)s;
	g_urg++;
}

static void pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		die("socketpair");
}

static void rd(const char *what, int fd, int flags)
{
	char buf[64];
	errno = 0;
	ssize_t n = recv(fd, buf, sizeof buf, flags | MSG_DONTWAIT);
	if (n < 0)
		printf("  %s: -1 %s\n", what, errname_io(errno));
	else
		printf("  %s: %zd \"%.*s\"\n", what, n, (int)n, buf);
}

static void rd_oob(const char *what, int fd, int flags)
{
	char buf[8];
	struct iovec iov = { buf, sizeof buf };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	errno = 0;
	ssize_t n = recvmsg(fd, &m, flags | MSG_OOB | MSG_DONTWAIT);
	if (n < 0)
		printf("  %s: -1 %s\n", what, errname_io(errno));
	else
		printf("  %s: %zd \"%.*s\" flags%s\n", what, n, (int)n, buf, m.msg_flags & MSG_OOB ? " MSG_OOB" : " none");
}

static void mark(const char *what, int fd)
{
	int at = -1, q = -1;
	ioctl(fd, SIOCATMARK, &at);
	ioctl(fd, FIONREAD, &q);
	printf("  %s: at mark %d, %d queued\n", what, at, q);
}

int main(void)
{
	int sv[2];
	setup();
	alarm(10);
	signal(SIGPIPE, SIG_IGN);

	CASE("oob_read_stops_at_the_mark");
	pair(sv);
	IOSHOW(send(sv[0], "abc", 3, MSG_OOB));
	mark("before", sv[1]);
	show_poll1("receiver", sv[1], POLLIN | POLLPRI);
	rd("read", sv[1], 0);
	mark("after data", sv[1]);
	rd_oob("oob", sv[1], 0);
	mark("after oob", sv[1]);
	show_poll1("receiver", sv[1], POLLIN | POLLPRI);
	rd_oob("oob again", sv[1], 0);
	rd("read", sv[1], 0);
	IOSHOW(send(sv[0], "de", 2, 0));
	rd("read", sv[1], 0);
	closep(sv);

	CASE("oob_nothing_and_none");
	pair(sv);
	IOSHOW(send(sv[0], "", 0, MSG_OOB));
	rd_oob("none", sv[1], 0);
	rd_oob("none peek", sv[1], MSG_PEEK);
	IOSHOW(send(sv[0], "x", 1, MSG_OOB));
	rd_oob("peek", sv[1], MSG_PEEK);
	rd_oob("take", sv[1], 0);
	mark("after", sv[1]);
	closep(sv);

	CASE("oob_read_past_the_mark_drops_it");
	pair(sv);
	IOSHOW(send(sv[0], "ab", 2, 0));
	IOSHOW(send(sv[0], "c", 1, MSG_OOB));
	IOSHOW(send(sv[0], "de", 2, 0));
	rd("read", sv[1], 0);
	mark("at", sv[1]);
	rd("read", sv[1], 0);
	rd_oob("oob", sv[1], 0);
	mark("after", sv[1]);
	closep(sv);

	CASE("oob_newer_makes_the_older_data");
	pair(sv);
	IOSHOW(send(sv[0], "12", 2, MSG_OOB));
	IOSHOW(send(sv[0], "34", 2, MSG_OOB));
	rd("read", sv[1], 0);
	rd("read", sv[1], 0);
	rd_oob("oob", sv[1], 0);
	rd("read", sv[1], 0);
	closep(sv);

	CASE("oob_taken_mark_still_stops_a_read");
	pair(sv);
	IOSHOW(send(sv[0], "ab", 2, 0));
	IOSHOW(send(sv[0], "c", 1, MSG_OOB));
	IOSHOW(send(sv[0], "de", 2, 0));
	rd_oob("oob", sv[1], 0);
	mark("at", sv[1]);
	rd("read", sv[1], 0);
	mark("at", sv[1]);
	rd("read", sv[1], 0);
	closep(sv);

	CASE("oob_dropped_bytes_stay_counted");
	pair(sv);
	IOSHOW(send(sv[0], "x", 1, MSG_OOB));
	rd("read", sv[1], 0);
	mark("after", sv[1]);
	IOSHOW(send(sv[0], "y", 1, MSG_OOB));
	rd("read", sv[1], 0);
	IOSHOW(send(sv[0], "zz", 2, 0));
	rd("read", sv[1], 0);
	mark("after", sv[1]);
	show_poll1("receiver", sv[1], POLLIN | POLLPRI);
	closep(sv);

	CASE("oob_taken_then_a_new_one");
	pair(sv);
	IOSHOW(send(sv[0], "ab", 2, 0));
	IOSHOW(send(sv[0], "c", 1, MSG_OOB));
	IOSHOW(send(sv[0], "de", 2, 0));
	rd_oob("oob", sv[1], 0);
	IOSHOW(send(sv[0], "f", 1, MSG_OOB));
	mark("at", sv[1]);
	rd("read", sv[1], 0);
	mark("at", sv[1]);
	rd("read", sv[1], 0);
	rd_oob("oob", sv[1], 0);
	closep(sv);

	CASE("oob_peek_only_marks_waits");
	pair(sv);
	IOSHOW(send(sv[0], "x", 1, MSG_OOB));
	rd("peek", sv[1], MSG_PEEK);
	{
		pid_t pid = io_fork();
		if (pid == 0) {
			char b[8];
			ssize_t n = recv(sv[1], b, sizeof b, MSG_PEEK);
			_exit(n == 2 && b[0] == 'y' ? 0 : 1);
		}
		io_wait_sleeping(pid);
		IOSHOW(send(sv[0], "yz", 2, 0));
		show_status_io("peeker", io_reap(pid));
	}
	rd_oob("oob", sv[1], 0);
	rd("read", sv[1], 0);
	closep(sv);

	CASE("oob_peek_at_the_mark");
	pair(sv);
	IOSHOW(send(sv[0], "ab", 2, 0));
	IOSHOW(send(sv[0], "c", 1, MSG_OOB));
	IOSHOW(send(sv[0], "de", 2, 0));
	rd("peek", sv[1], MSG_PEEK);
	rd("read", sv[1], 0);
	rd("peek", sv[1], MSG_PEEK);
	rd_oob("oob peek", sv[1], MSG_PEEK);
	rd("read", sv[1], 0);
	closep(sv);

	CASE("oob_inline");
	pair(sv);
	{
		int one = 1;
		IOSHOW(setsockopt(sv[1], SOL_SOCKET, SO_OOBINLINE, &one, sizeof one));
	}
	IOSHOW(send(sv[0], "abc", 3, MSG_OOB));
	IOSHOW(send(sv[0], "de", 2, 0));
	mark("before", sv[1]);
	rd_oob("oob", sv[1], 0);
	rd("read", sv[1], 0);
	mark("at", sv[1]);
	rd("read", sv[1], 0);
	closep(sv);

	CASE("oob_waitall_stops_at_the_mark");
	pair(sv);
	IOSHOW(send(sv[0], "abc", 3, MSG_OOB));
	IOSHOW(send(sv[0], "def", 3, 0));
	{
		char buf[16];
		IOSHOW(recv(sv[1], buf, 5, MSG_WAITALL));
	}
	closep(sv);

	CASE("oob_select_exceptfds");
	pair(sv);
	{
		fd_set ex;
		struct timeval tv = { 0, 0 };
		FD_ZERO(&ex);
		FD_SET(sv[1], &ex);
		IOSHOW(select(sv[1] + 1, NULL, NULL, &ex, &tv));
		IOSHOW(send(sv[0], "!", 1, MSG_OOB));
		FD_ZERO(&ex);
		FD_SET(sv[1], &ex);
		IOSHOW(select(sv[1] + 1, NULL, NULL, &ex, &tv));
		printf("  in exceptfds: %d\n", FD_ISSET(sv[1], &ex));
	}
	closep(sv);

	CASE("oob_sigurg_to_the_owner");
	pair(sv);
	io_handler(SIGURG, on_urg, 0);
	IOSHOW(send(sv[0], "u", 1, MSG_OOB));
	printf("  SIGURG %d time(s)\n", g_urg);
	IOSHOW(fcntl(sv[1], F_SETOWN, getpid()));
	IOSHOW(send(sv[0], "v", 1, MSG_OOB));
	printf("  SIGURG %d time(s)\n", g_urg);
	IOSHOW(send(sv[1], "w", 1, MSG_OOB));
	printf("  SIGURG %d time(s) (the sender's own file has no owner)\n", g_urg);
	IOSHOW(fcntl(sv[1], F_SETOWN, 0));
	IOSHOW(send(sv[0], "x", 1, MSG_OOB));
	printf("  SIGURG %d time(s)\n", g_urg);
	closep(sv);

	CASE("oob_efault_takes_the_byte");
	pair(sv);
	IOSHOW(send(sv[0], "z", 1, MSG_OOB));
	IOSHOW(recv(sv[1], (void *)8, 1, MSG_OOB));
	rd_oob("oob", sv[1], 0);
	closep(sv);

	CASE("oob_peer_gone");
	pair(sv);
	io_close(sv[1]);
	IOSHOW(send(sv[0], "ab", 2, MSG_OOB));
	io_close(sv[0]);
	pair(sv);
	IOSHOW(shutdown(sv[1], SHUT_RD));
	IOSHOW(send(sv[0], "ab", 2, MSG_OOB));
	closep(sv);

	CASE("oob_sockatmark_through_glibc");
	/* sockatmark is glibc's internal ioctl: after its call site trapped twice it is rewritten,
	 * and its stub must still leave SIOCATMARK on a shim socket to the shim. */
	pair(sv);
	IOSHOW(send(sv[0], "ab", 2, MSG_OOB));
	for (int i = 0; i < 3; i++)
		printf("  sockatmark = %d\n", sockatmark(sv[1]));
	rd("read", sv[1], 0);
	printf("  sockatmark = %d\n", sockatmark(sv[1]));
	closep(sv);

	CASE("oob_seqpacket_has_none");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv))
		die("socketpair");
	IOSHOW(send(sv[0], "ab", 2, MSG_OOB));
	rd_oob("oob", sv[1], 0);
	{
		int at = -1;
		IOSHOW(ioctl(sv[1], SIOCATMARK, &at));
	}
	closep(sv);
	return 0;
}
