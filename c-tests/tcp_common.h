/* Helpers for the loopback TCP differential tests (tcp_*.c): listeners on 127.0.0.1 or ::1
 * with a port the kernel picks (ports are never printed), clients, and what a receive got. */
#ifndef IPCSHIM_TCP_COMMON_H
#define IPCSHIM_TCP_COMMON_H

#include "common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <linux/sockios.h>

static const int g_fams[2] = { AF_INET, AF_INET6 };

static __attribute__((unused)) const char *fam_name(int fam)
{
	return fam == AF_INET ? "ipv4" : "ipv6";
}

/* The loopback address of `fam` with `port`, into ss; its length. */
static __attribute__((unused)) socklen_t tcp_addr(int fam, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (fam == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof *a;
	}
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
	a->sin6_family = AF_INET6;
	a->sin6_port = htons(port);
	a->sin6_addr = in6addr_loopback;
	return sizeof *a;
}

/* A listener on loopback with `backlog`, port chosen by the kernel (into *port). */
static __attribute__((unused)) int tcp_listener_backlog(int fam, int backlog, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len = tcp_addr(fam, 0, &ss);
	int l = socket(fam, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&ss, len) || listen(l, backlog))
		die("tcp listener");
	len = sizeof ss;
	if (getsockname(l, (struct sockaddr *)&ss, &len))
		die("getsockname");
	*port = ntohs(fam == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
				     : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return l;
}

/* A listener on loopback, port chosen by the kernel (into *port). */
static __attribute__((unused)) int tcp_listener(int fam, int *port)
{
	return tcp_listener_backlog(fam, 128, port);
}

/* A blocking client connected to loopback `port`. */
static __attribute__((unused)) int tcp_client(int fam, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = tcp_addr(fam, port, &ss);
	int c = socket(fam, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&ss, len))
		die("tcp connect");
	return c;
}

/* A connected pair in this process: client *c, accepted *s. */
static __attribute__((unused)) void tcp_pair(int fam, int l, int port, int *c, int *s)
{
	*c = tcp_client(fam, port);
	*s = accept(l, NULL, NULL);
	if (*s < 0)
		die("accept");
}

/* What a receive returned, with its data. */
static __attribute__((unused)) void show_recv(const char *what, long n, int e, const char *buf)
{
	if (n < 0)
		printf("  %s = -1 %s\n", what, errname_io(e));
	else
		printf("  %s = %ld \"%.*s\"\n", what, n, (int)n, buf);
}

#define RECV(fd, cap, flags) ({ char b_[256]; errno = 0; long n_ = recv(fd, b_, cap, flags); \
	show_recv("recv(" #fd ", " #cap ", " #flags ")", n_, errno, b_); n_; })

/* Bytes waiting to be read (FIONREAD), printed. */
static __attribute__((unused)) void show_inq(const char *what, int fd)
{
	int n = -1;
	errno = 0;
	if (ioctl(fd, FIONREAD, &n))
		printf("  FIONREAD %s = -1 %s\n", what, errname_io(errno));
	else
		printf("  FIONREAD %s = %d\n", what, n);
}

/* Waits (up to 5 s) until `fd` polls one of `events`. */
static __attribute__((unused)) void tcp_wait_for(int fd, short events)
{
	struct pollfd p = { fd, events, 0 };
	if (poll(&p, 1, 5000) != 1)
		die("tcp_wait_for");
}

#endif
