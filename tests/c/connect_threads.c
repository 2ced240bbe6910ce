/* For tests/tests/socket_stress.rs. AF_UNIX connects that overlap (issue 17): threads of one process connecting to one listener
 * at once, and several such processes, against a server in another process. The kernel's
 * accept queue then holds a client process's connections in an order its threads did not
 * choose; every connection must still pair the client's socket with the one the server
 * accepted for it. Each client binds its socket to an abstract name made of its tag and sends
 * the tag; the server answers the tag plus one if the kernel names the accepted socket's peer
 * by that tag (the data came from the socket the kernel connected), else zero. A server that
 * adopts, answers and closes at once must not leave its client reading end of file. Prints a
 * line per case, "N connections, W answered wrong"; runs in a scratch directory (the current
 * one), where it binds "srv". Not a c-test: which connection the server reads first is the
 * threads' race, which `ipcshim diff` would see as a divergence. */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define THREADS 6
#define CONNECTS 150
#define PROCS 3

static struct sockaddr_un g_addr;
static socklen_t g_alen;
static long g_wrong[THREADS];
/* Abstract names carry a tag unique to this run (other runs share the network namespace). */
static unsigned g_run;

static void die(const char *what)
{
	fprintf(stderr, "connect_threads: %s: %s\n", what, strerror(errno));
	exit(2);
}

static socklen_t abstract_name(struct sockaddr_un *a, unsigned long tag)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "ipcshim-ct-%x-%lx", g_run, tag);
	return offsetof(struct sockaddr_un, sun_path) + 1 + n;
}

static int stream_socket(void)
{
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s < 0)
		die("socket");
	return s;
}

static pid_t start(void)
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	return pid;
}

/* Whether child pid exited with status 0. */
static int reaped_ok(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

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
		int s = stream_socket();
		unsigned long tag = (unsigned long)getpid() << 32 | t << 16 | i, back = 0;
		struct sockaddr_un me;
		socklen_t len = abstract_name(&me, tag);
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
			socklen_t wlen = abstract_name(&want, tag);
			int same = getpeername(s, (struct sockaddr *)&peer, &plen) == 0 && plen == wlen &&
				   memcmp(&peer, &want, wlen) == 0;
			tag = same ? tag + 1 : 0;
			if (write(s, &tag, sizeof tag) != sizeof tag)
				die("write");
		}
		close(s);
	}
}

/* procs client processes of THREADS threads each against a server process; whether all went
 * right. */
static int run(const char *name, int procs)
{
	int l = stream_socket();
	unlink(g_addr.sun_path);
	if (bind(l, (struct sockaddr *)&g_addr, g_alen) || listen(l, 64))
		die("bind/listen");
	pid_t server = start();
	if (server == 0) {
		serve(l, (long)procs * THREADS * CONNECTS);
		_exit(0);
	}
	close(l);
	pid_t kids[PROCS];
	int p[2];
	if (pipe(p))
		die("pipe");
	for (int k = 0; k < procs; k++) {
		kids[k] = start();
		if (kids[k] == 0) {
			long wrong = client();
			_exit(write(p[1], &wrong, sizeof wrong) == sizeof wrong ? 0 : 1);
		}
	}
	long wrong = 0;
	int ok = 1;
	for (int k = 0; k < procs; k++) {
		long w;
		if (read_full(p[0], &w, sizeof w) == 0)
			wrong += w;
		else
			ok = 0;
		ok &= reaped_ok(kids[k]);
	}
	close(p[0]);
	close(p[1]);
	ok &= reaped_ok(server);
	printf("%s: %d connections, %ld answered wrong%s\n", name, procs * THREADS * CONNECTS, wrong,
	       ok ? "" : " (a process failed)");
	unlink(g_addr.sun_path);
	return ok && wrong == 0;
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	g_run = (unsigned)getpid() * 2654435761u ^ (unsigned)ts.tv_nsec;
	memset(&g_addr, 0, sizeof g_addr);
	g_addr.sun_family = AF_UNIX;
	strcpy(g_addr.sun_path, "srv");
	g_alen = offsetof(struct sockaddr_un, sun_path) + sizeof "srv";
	alarm(50);
	int ok = run("threads of one process", 1);
	ok &= run("threads of three processes", PROCS);
	return ok ? 0 : 1;
}
