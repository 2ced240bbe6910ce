/* AF_UNIX connects that overlap (issue 17): threads of one process connecting to one listener
 * at once, and several such processes, against a server in another process. The kernel's
 * accept queue then holds a client process's connections in an order its threads did not
 * choose; every connection must still pair the client's socket with the one the server
 * accepted for it. Each client binds its socket to an abstract name made of its tag and sends
 * the tag; the server answers the tag plus one if the kernel names the accepted socket's peer
 * by that tag (the data came from the socket the kernel connected), else zero. A server that
 * adopts, answers and closes at once must not leave its client reading end of file. */
#include "common.h"
#include <pthread.h>

#define THREADS 6
#define CONNECTS 150
#define PROCS 3

static struct sockaddr_un g_addr;
static socklen_t g_alen;
static long g_wrong[THREADS];

static int read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		long n = read(fd, (char *)buf + got, len - got);
		if (n <= 0)
			return -1;
		got += n;
	}
	return 0;
}

static void *client_thread(void *arg)
{
	long t = (long)arg;
	for (long i = 0; i < CONNECTS; i++) {
		int s = sk_socket(SOCK_STREAM);
		unsigned long tag = (unsigned long)getpid() << 32 | t << 16 | i, back = 0;
		struct sockaddr_un me;
		char name[32];
		snprintf(name, sizeof name, "%lx", tag);
		socklen_t len = sk_abstract(&me, name);
		if (bind(s, (struct sockaddr *)&me, len))
			die("bind");
		if (connect(s, (struct sockaddr *)&g_addr, g_alen))
			die("connect");
		if (write(s, &tag, sizeof tag) != sizeof tag || read_full(s, &back, sizeof back))
			g_wrong[t]++;
		else if (back != tag + 1)
			g_wrong[t]++;
		close(s);
	}
	return NULL;
}

/* THREADS threads of this process connect CONNECTS times each; how many answers were wrong. */
static long client(void)
{
	pthread_t th[THREADS];
	for (long t = 0; t < THREADS; t++)
		if (pthread_create(&th[t], NULL, client_thread, (void *)t))
			die("pthread_create");
	long wrong = 0;
	for (long t = 0; t < THREADS; t++) {
		pthread_join(th[t], NULL);
		wrong += g_wrong[t];
	}
	return wrong;
}

/* Accepts n connections, answering each tag with tag + 1. */
static void serve(int l, long n)
{
	for (long k = 0; k < n; k++) {
		int s = accept(l, NULL, NULL);
		if (s < 0)
			die("accept");
		unsigned long tag;
		if (read_full(s, &tag, sizeof tag) == 0) {
			struct sockaddr_un peer, want;
			socklen_t plen = sizeof peer;
			char name[32];
			snprintf(name, sizeof name, "%lx", tag);
			socklen_t wlen = sk_abstract(&want, name);
			int same = getpeername(s, (struct sockaddr *)&peer, &plen) == 0 && plen == wlen &&
				   memcmp(&peer, &want, wlen) == 0;
			tag = same ? tag + 1 : 0;
			if (write(s, &tag, sizeof tag) != sizeof tag)
				die("write");
		}
		close(s);
	}
}

static void run(const char *name, int procs)
{
	CASE(name);
	int l = sk_socket(SOCK_STREAM);
	if (bind(l, (struct sockaddr *)&g_addr, g_alen) || listen(l, 64))
		die("bind/listen");
	pid_t server = io_fork();
	if (server == 0) {
		serve(l, (long)procs * THREADS * CONNECTS);
		_exit(0);
	}
	close(l);
	pid_t kids[PROCS];
	int p[2];
	io_pipe(p);
	for (int k = 0; k < procs; k++) {
		kids[k] = io_fork();
		if (kids[k] == 0) {
			long wrong = client();
			if (write(p[1], &wrong, sizeof wrong) != sizeof wrong)
				_exit(1);
			_exit(0);
		}
	}
	long wrong = 0;
	for (int k = 0; k < procs; k++) {
		long w;
		if (read_full(p[0], &w, sizeof w) == 0)
			wrong += w;
		show_status_io("client", io_reap(kids[k]));
	}
	closep(p);
	show_status_io("server", io_reap(server));
	printf("  %d connections, %ld answered wrong\n", procs * THREADS * CONNECTS, wrong);
	unlink(g_addr.sun_path);
}

int main(void)
{
	sk_setup();
	alarm(50);
	g_alen = sk_path(&g_addr, "srv");
	run("threads_of_one_process_connect_at_once", 1);
	run("threads_of_three_processes_connect_at_once", PROCS);
	sk_cleanup();
	return 0;
}
