/* A stream skb read all but its last bytes stays charged whole to its sender: POLLOUT,
 * SIOCOUTQ and a non-blocking send after partial reads of one large skb, on a socketpair
 * with a raised send buffer (the charge, not the buffers left, decides). */
#include "common.h"
#include <poll.h>
#include <sys/ioctl.h>

static void show(const char *what, int s)
{
	struct pollfd p = { s, POLLOUT, 0 };
	int n = poll(&p, 1, 0);
	int outq = -1;
	ioctl(s, TIOCOUTQ, &outq);
	printf("  %s: poll = %d%s, SIOCOUTQ = %d\n", what, n, p.revents & POLLOUT ? " POLLOUT" : "", outq);
}

int main(void)
{
	setup();
	static char buf[65536];
	int sizes[] = { 40000, 60000 };
	for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
		char name[64];
		snprintf(name, sizeof name, "stream_partial_sndbuf_%d", sizes[k]);
		CASE(name);
		int sv[2];
		sk_pair(SOCK_STREAM, sv);
		if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sizes[k], sizeof sizes[k]))
			die("SO_SNDBUF");
		long n = send(sv[0], buf, 36544, MSG_DONTWAIT);
		printf("  send = %ld\n", n);
		show("queued", sv[0]);
		long left = n;
		int reads[] = { 4096, 16384, 12000, 3964, 60 };
		for (size_t i = 0; i < sizeof reads / sizeof *reads && left > 0; i++) {
			long r = recv(sv[1], buf, reads[i] < left ? reads[i] : left, MSG_DONTWAIT);
			left -= r > 0 ? r : 0;
			char what[64];
			snprintf(what, sizeof what, "read %ld, %ld left", r, left);
			show(what, sv[0]);
		}
		errno = 0;
		n = send(sv[0], buf, 1, MSG_DONTWAIT);
		printf("  send 1 = %ld %s\n", n, errname_io(errno));
		closep(sv);
	}
	return 0;
}
