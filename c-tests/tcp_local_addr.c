/* TCP between shimmed processes over this host's own non-loopback addresses (the first IPv4
 * and the first global IPv6 address of an interface that is up): a listener on the any
 * address and one bound to the host's address, each with a client in another process that
 * connects to that address, an echo both ways, the names both ends see, end of file after
 * the client's close. A family whose address the host lacks prints "no address" (in both
 * runs alike).
 * Under the shim no byte may move through a kernel TCP socket (the runner's strace check).
 */
#include "tcp_common.h"
#include <ifaddrs.h>
#include <net/if.h>

/* The host's first non-loopback address of `fam` (IPv6: not link-local), port 0; 0 if none. */
static socklen_t host_addr(int fam, struct sockaddr_storage *ss)
{
	struct ifaddrs *all, *i;
	socklen_t len = 0;
	if (getifaddrs(&all))
		die("getifaddrs");
	for (i = all; i && !len; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != fam || !(i->ifa_flags & IFF_UP) ||
		    (i->ifa_flags & IFF_LOOPBACK))
			continue;
		if (fam == AF_INET6 &&
		    IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr))
			continue;
		len = fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
		memset(ss, 0, sizeof *ss);
		memcpy(ss, i->ifa_addr, len);
	}
	freeifaddrs(all);
	return len;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* Whether `fd`'s own (or peer's) address is the one in `want` (ports not compared). */
static int names_host(int fd, int peer, const struct sockaddr_storage *want)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if ((peer ? getpeername : getsockname)(fd, (struct sockaddr *)&ss, &len))
		return 0;
	if (ss.ss_family != want->ss_family)
		return 0;
	if (ss.ss_family == AF_INET)
		return ((struct sockaddr_in *)&ss)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)want)->sin_addr.s_addr;
	return !memcmp(&((struct sockaddr_in6 *)&ss)->sin6_addr,
		       &((const struct sockaddr_in6 *)want)->sin6_addr, 16);
}

/* A listener on the any address (bound_to_host 0) or on the host's address, a client process
 * connecting to the host's address. */
static void echo(int fam, const struct sockaddr_storage *host, socklen_t hlen, int bound_to_host)
{
	struct sockaddr_storage ss = *host;
	socklen_t len = hlen;
	if (!bound_to_host) {
		len = tcp_addr(fam, 0, &ss);
		if (fam == AF_INET)
			((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_ANY);
		else
			((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_any;
	}
	int l = socket(fam, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&ss, len) || listen(l, 16))
		die("listener");
	socklen_t slen = sizeof ss;
	if (getsockname(l, (struct sockaddr *)&ss, &slen))
		die("getsockname");
	int port = ntohs(fam == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
				       : ((struct sockaddr_in6 *)&ss)->sin6_port);
	struct sockaddr_storage to = *host;
	set_port(&to, port);
	pid_t pid = io_fork();
	if (pid == 0) {
		int c = socket(fam, SOCK_STREAM, 0);
		char buf[8] = { 0 };
		if (c < 0 || connect(c, (struct sockaddr *)&to, hlen))
			_exit(2);
		if (write(c, "hello", 5) != 5 || recv(c, buf, 5, MSG_WAITALL) != 5 || memcmp(buf, "world", 5))
			_exit(1);
		close(c);
		_exit(0);
	}
	int s = accept(l, NULL, NULL);
	if (s < 0)
		die("accept");
	printf("  own name is the host's address: %d, peer's: %d\n", names_host(s, 0, host),
	       names_host(s, 1, host));
	RECV(s, 5, MSG_WAITALL);
	IOSHOW(write(s, "world", 5));
	RECV(s, 5, 0);
	show_status_io("client", io_reap(pid));
	close(s);
	close(l);
}

int main(void)
{
	setup();
	alarm(60);
	for (int f = 0; f < 2; f++) {
		int fam = g_fams[f];
		struct sockaddr_storage host;
		socklen_t hlen = host_addr(fam, &host);
		printf("case any_address_%s\n", fam_name(fam));
		if (!hlen) {
			printf("  no address\n");
			continue;
		}
		echo(fam, &host, hlen, 0);
		printf("case host_address_%s\n", fam_name(fam));
		echo(fam, &host, hlen, 1);
	}
	return 0;
}
