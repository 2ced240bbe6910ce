/* SIOCOUTQ, SIOCINQ, POLLOUT and SO_SNDBUF of a socket, for the send-buffer tests. */
#ifndef IPCSHIM_SK_BUF_H
#define IPCSHIM_SK_BUF_H

#include "common.h"
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>

static __attribute__((unused)) int outq(int fd)
{
	int n = -1;
	if (ioctl(fd, SIOCOUTQ, &n))
		die("SIOCOUTQ");
	return n;
}

static __attribute__((unused)) int inq(int fd)
{
	int n = -1;
	if (ioctl(fd, SIOCINQ, &n))
		die("SIOCINQ");
	return n;
}

static __attribute__((unused)) int pollout(int fd)
{
	struct pollfd p = { fd, POLLOUT, 0 };
	if (poll(&p, 1, 0) < 0)
		die("poll");
	return !!(p.revents & POLLOUT);
}

static __attribute__((unused)) int sndbuf(int fd)
{
	int v = -1;
	socklen_t l = sizeof v;
	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &l))
		die("getsockopt SO_SNDBUF");
	return v;
}

#endif
