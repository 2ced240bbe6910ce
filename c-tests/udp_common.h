/* Helpers for the loopback UDP differential tests (udp_*.c): sockets bound to 127.0.0.1 or
 * ::1 with a port the kernel picks (ports are never printed), and what a receive got, with
 * whether its source address is the one the sender's getsockname gives. */
#ifndef IPCSHIM_UDP_COMMON_H
#define IPCSHIM_UDP_COMMON_H

#include "tcp_common.h"

/* A UDP socket of `fam` bound to loopback, port chosen by the kernel (into *port). */
static __attribute__((unused)) int udp_bound(int fam, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len = tcp_addr(fam, 0, &ss);
	int u = socket(fam, SOCK_DGRAM, 0);
	if (u < 0 || bind(u, (struct sockaddr *)&ss, len))
		die("udp bind");
	len = sizeof ss;
	if (getsockname(u, (struct sockaddr *)&ss, &len))
		die("getsockname");
	*port = ntohs(fam == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
				     : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return u;
}

/* sendto the loopback address of `fam` at `port`. */
static __attribute__((unused)) long udp_sendto(int u, int fam, int port, const void *buf, size_t n, int flags)
{
	struct sockaddr_storage ss;
	socklen_t len = tcp_addr(fam, port, &ss);
	return sendto(u, buf, n, flags, (struct sockaddr *)&ss, len);
}

/* connect to the loopback address of `fam` at `port`. */
static __attribute__((unused)) int udp_connect(int u, int fam, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = tcp_addr(fam, port, &ss);
	return connect(u, (struct sockaddr *)&ss, len);
}

/* recvfrom into a small buffer: the count, the data, the address length, and whether the
 * address is `from`'s own name (its getsockname, with an unbound address as the loopback one). */
static __attribute__((unused)) void udp_show_recvfrom(const char *what, int u, size_t cap, int flags, int from)
{
	char buf[256];
	struct sockaddr_storage src, want;
	socklen_t slen = sizeof src, wlen = sizeof want;
	memset(&src, 0xee, sizeof src);
	errno = 0;
	long n = recvfrom(u, buf, cap, flags, (struct sockaddr *)&src, &slen);
	int e = errno;
	if (n < 0)
		printf("  %s = -1 %s\n", what, errname_io(e));
	else
		printf("  %s = %ld \"%.*s\"\n", what, n, (int)(n < (long)cap ? n : (long)cap), buf);
	if (n < 0 || from < 0)
		return;
	if (getsockname(from, (struct sockaddr *)&want, &wlen))
		die("getsockname from");
	int same;
	if (src.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&src, *b = (struct sockaddr_in *)&want;
		same = b->sin_family == AF_INET && a->sin_port == b->sin_port &&
		       (b->sin_addr.s_addr == 0 ? a->sin_addr.s_addr == htonl(INADDR_LOOPBACK)
						: a->sin_addr.s_addr == b->sin_addr.s_addr) &&
		       !memcmp(a->sin_zero, "\0\0\0\0\0\0\0\0", 8);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&src;
		if (want.ss_family == AF_INET) {
			struct sockaddr_in *b = (struct sockaddr_in *)&want;
			same = a->sin6_port == b->sin_port && IN6_IS_ADDR_V4MAPPED(&a->sin6_addr);
		} else {
			struct sockaddr_in6 *b = (struct sockaddr_in6 *)&want;
			same = a->sin6_port == b->sin6_port &&
			       (IN6_IS_ADDR_UNSPECIFIED(&b->sin6_addr) ? IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) ||
									 IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)
								       : !memcmp(&a->sin6_addr, &b->sin6_addr, 16));
		}
		same = same && a->sin6_flowinfo == 0 && a->sin6_scope_id == 0;
	}
	printf("    from: family %s, addrlen %u, the sender's name: %s\n",
	       src.ss_family == AF_INET ? "AF_INET" : src.ss_family == AF_INET6 ? "AF_INET6" : "?",
	       (unsigned)slen, same ? "yes" : "no");
}

/* Waits (up to 5 s) until `fd` polls one of `events`; what it polled. */
static __attribute__((unused)) short udp_poll(int fd, short events, int ms)
{
	struct pollfd p = { fd, events, 0 };
	if (poll(&p, 1, ms) < 0)
		die("poll");
	return p.revents;
}

#endif
