/* FIONREAD (SIOCINQ) of AF_UNIX datagram sockets: the size of the next datagram to be received
 * only, whichever way it travelled (a datagram with SCM_RIGHTS, one without, in either order),
 * on named sockets and on a socketpair, and 0 on an empty queue. A named socket's datagram
 * with SCM_RIGHTS is the kernel's to carry (the shim queues a marker in its place), so data
 * moves through kernel sockets here.
 * kernel-sockets: allowed */
#include "common.h"
#include <sys/ioctl.h>

static void inq(const char *what, int fd)
{
	int n = -1;
	errno = 0;
	long r = ioctl(fd, FIONREAD, &n);
	printf("  %s: FIONREAD = %ld %s, %d\n", what, r, errname_io(errno), n);
}

/* Receives one datagram, with room for fds, and closes any it brought. */
static void take(const char *what, int fd)
{
	char data[64];
	int fds[16], nfds, mflags = 0;
	errno = 0;
	long n = sk_recv_fds(fd, data, sizeof data, fds, &nfds, 4, MSG_DONTWAIT, &mflags);
	if (n < 0) {
		printf("  %s = -1 %s\n", what, errname_io(errno));
		return;
	}
	printf("  %s = %ld \"%.*s\", %d fds\n", what, n, (int)n, data, nfds);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
}

/* From `from` to `to` (whose address `a` is, or connected when NULL): a plain datagram and one
 * with an fd, in the order given, then FIONREAD after each receive. */
static void order(const char *name, int from, int to, const struct sockaddr_un *a, socklen_t la,
		  int fd_first)
{
	char c[64];
	snprintf(c, sizeof c, "dgram_inq_%s_%s_first", name, fd_first ? "fd" : "plain");
	CASE(c);
	inq("empty", to);
	int pfd[2];
	if (pipe(pfd))
		die("pipe");
	for (int k = 0; k < 2; k++) {
		long n;
		if ((k == 0) == (fd_first != 0)) {
			n = sk_send_fds(from, &pfd[0], 1, "with-fd", 7);
			printf("  send with fd = %ld\n", n);
		} else {
			n = sendto(from, "plain", 5, 0, (const struct sockaddr *)a, a ? la : 0);
			printf("  send plain = %ld\n", n);
		}
		if (n < 0)
			die("send");
	}
	closep(pfd);
	inq("two queued", to);
	take("recv", to);
	inq("one queued", to);
	take("recv", to);
	inq("none queued", to);
}

int main(void)
{
	sk_setup();
	struct sockaddr_un a, b;
	socklen_t la = sk_path(&a, "inq_a"), lb = sk_path(&b, "inq_b");
	int x = sk_listener(SOCK_DGRAM, &a, la, -1);
	int y = sk_listener(SOCK_DGRAM, &b, lb, -1);
	/* x is connected to y (its sends with fds name no address); its plain ones name y. */
	if (connect(x, (const struct sockaddr *)&b, lb))
		die("connect");
	order("named", x, y, &b, lb, 0);
	order("named", x, y, &b, lb, 1);
	close(x);
	close(y);
	int sv[2];
	sk_pair(SOCK_DGRAM, sv);
	order("socketpair", sv[0], sv[1], NULL, 0, 0);
	order("socketpair", sv[0], sv[1], NULL, 0, 1);
	closep(sv);
	sk_cleanup();
	return 0;
}
