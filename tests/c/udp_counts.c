/* Loopback UDP datagrams between two sockets of one process, for tests/tests/counters.rs: N
 * datagrams of 100 bytes sent from one socket bound to 127.0.0.1 to another, each received.
 * Prints "done".
 * Usage: udp_counts DIR N */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static void check(int ok, const char *what)
{
	if (!ok) {
		perror(what);
		exit(1);
	}
}

/* A UDP socket bound to 127.0.0.1 on a port the kernel picks; its name into *a. */
static int bound(struct sockaddr_in *a)
{
	socklen_t len = sizeof *a;
	*a = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	check(s >= 0 && !bind(s, (struct sockaddr *)a, sizeof *a) && !getsockname(s, (struct sockaddr *)a, &len),
	      "bind");
	return s;
}

int main(int argc, char **argv)
{
	check(argc == 3, "usage: udp_counts DIR N");
	struct sockaddr_in from, to;
	int a = bound(&from), b = bound(&to), n = atoi(argv[2]);
	char out[100], in[200];
	for (int i = 0; i < n; i++) {
		memset(out, 'a' + i % 26, sizeof out);
		check(sendto(a, out, sizeof out, 0, (struct sockaddr *)&to, sizeof to) == sizeof out, "sendto");
		check(recv(b, in, sizeof in, 0) == sizeof out && !memcmp(in, out, sizeof out), "recv");
	}
	close(a);
	close(b);
	printf("done\n");
	return 0;
}
