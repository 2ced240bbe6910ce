/* Connections made and closed in one process, for tests/tests/counters.rs: SOLE cycles whose
 * accepted socket is closed by the only fd that ever held it (its queues go at the close, as
 * the kernel frees a socket's buffers at its release), then SHARED cycles whose accepted socket
 * is dup'd first (neither close can tell it was the last: a collection frees those). Each
 * cycle sends 100 bytes each way. With `tcp`, over loopback TCP (127.0.0.1), the client's
 * TCP_NODELAY set before its connect, as request-response programs do. Prints "done".
 * Usage: connect_cycles DIR SOLE SHARED [tcp] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

static void check(int ok, const char *what)
{
	if (!ok) {
		perror(what);
		exit(1);
	}
}

static void exchange(int a, int b)
{
	char out[100], in[100];
	memset(out, 'x', sizeof out);
	check(send(a, out, sizeof out, 0) == sizeof out, "send");
	check(recv(b, in, sizeof in, MSG_WAITALL) == sizeof in && !memcmp(in, out, sizeof in), "recv");
}

int main(int argc, char **argv)
{
	int tcp = argc == 5 && !strcmp(argv[4], "tcp");
	check(argc == 4 || tcp, "usage: connect_cycles DIR SOLE SHARED [tcp]");
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr *addr = tcp ? (struct sockaddr *)&in : (struct sockaddr *)&a;
	socklen_t alen = tcp ? sizeof in : sizeof a;
	int family = tcp ? AF_INET : AF_UNIX, one = 1;
	snprintf(a.sun_path, sizeof a.sun_path, "%s/cycles.sock", argv[1]);
	unlink(a.sun_path);
	int l = socket(family, SOCK_STREAM, 0);
	check(l >= 0 && !bind(l, addr, alen) && !listen(l, 16) && !getsockname(l, addr, &alen), "listen");
	int sole = atoi(argv[2]), shared = atoi(argv[3]);
	for (int i = 0; i < sole + shared; i++) {
		int c = socket(family, SOCK_STREAM, 0);
		check(c >= 0, "socket");
		check(!tcp || !setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), "TCP_NODELAY");
		check(!connect(c, addr, alen), "connect");
		int s = accept(l, NULL, NULL);
		check(s >= 0, "accept");
		exchange(c, s);
		exchange(s, c);
		if (i >= sole) {
			int d = dup(s);
			check(d >= 0 && !close(s), "dup");
			s = d;
		}
		check(!close(s) && !close(c), "close");
	}
	close(l);
	unlink(a.sun_path);
	printf("done\n");
	return 0;
}
