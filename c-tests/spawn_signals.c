/* Signal dispositions across posix_spawn and vfork. glibc's posix_spawn child, which shares its
 * parent's memory, queries every signal and resets the handled ones (two rt_sigaction calls
 * per signal, which the shim passes to the kernel on the application's own pointers there);
 * the exec'd image then keeps what is ignored and defaults the rest. A vfork child's own
 * queries, sets and bad pointers get the kernel's answers, and its changes stay its own. The
 * exec'd images report through a pipe. */
#include "common.h"
#include <spawn.h>

extern char **environ;

static void handler(int sig)
{
	(void)sig;
}

/* In the exec'd image: D, I or H for each of signals 1..64 (- for glibc's own two), then
 * whether SIGUSR1 is blocked, to fd. */
static int report(int fd)
{
	char line[128];
	int n = 0;
	for (int s = 1; s <= 64; s++) {
		struct sigaction sa;
		if (s == 32 || s == 33) {
			line[n++] = '-';
			continue;
		}
		if (sigaction(s, NULL, &sa)) {
			line[n++] = 'E';
			continue;
		}
		line[n++] = sa.sa_handler == SIG_DFL ? 'D' : sa.sa_handler == SIG_IGN ? 'I' : 'H';
	}
	sigset_t now;
	sigprocmask(SIG_BLOCK, NULL, &now);
	n += snprintf(line + n, sizeof line - n, " usr1_blocked=%d\n", sigismember(&now, SIGUSR1));
	return write(fd, line, n) == n ? 0 : SETUP_FAIL;
}

static void set(int sig, void (*h)(int), int full_mask)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = h;
	if (full_mask)
		sigfillset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL))
		die("sigaction");
}

/* Spawns this program as a reporter on a pipe and prints its line. */
static void spawn_report(const char *name, posix_spawnattr_t *attr)
{
	int p[2];
	if (pipe(p))
		die("pipe");
	char fd[16], *argv[] = { "/proc/self/exe", "report", fd, NULL };
	snprintf(fd, sizeof fd, "%d", p[1]);
	char self[4096];
	ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
	if (k < 0)
		die("readlink");
	self[k] = 0;
	argv[0] = self;
	pid_t pid;
	int e = posix_spawn(&pid, self, NULL, attr, argv, environ);
	if (e) {
		printf("%s: posix_spawn %s\n", name, errname(e));
		return;
	}
	close(p[1]);
	char line[128];
	ssize_t got = 0, r;
	while ((r = read(p[0], line + got, sizeof line - 1 - got)) > 0)
		got += r;
	line[got] = 0;
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	if (name) {
		printf("%s: %s", name, line);
		printf("%s: exit %d\n", name, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	}
}

/* In a vfork child: the disposition of `sig` as a letter. */
static char letter(int sig)
{
	struct sigaction sa;
	if (sigaction(sig, NULL, &sa))
		return 'E';
	return sa.sa_handler == SIG_DFL ? 'D' : sa.sa_handler == SIG_IGN ? 'I' : 'H';
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "report"))
		return report(atoi(argv[2]));
	setup();
	set(SIGUSR1, handler, 0);
	set(SIGUSR2, SIG_IGN, 0);
	set(SIGTERM, handler, 1);
	set(SIGHUP, SIG_IGN, 0);
	set(SIGCHLD, SIG_DFL, 0);

	CASE("spawn_resets_handled_keeps_ignored");
	spawn_report("default", NULL);

	CASE("spawn_setsigdef");
	posix_spawnattr_t attr;
	posix_spawnattr_init(&attr);
	sigset_t def;
	sigemptyset(&def);
	sigaddset(&def, SIGUSR2);
	posix_spawnattr_setsigdefault(&attr, &def);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
	spawn_report("setsigdef", &attr);
	posix_spawnattr_destroy(&attr);

	CASE("spawn_setsigmask");
	posix_spawnattr_init(&attr);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	posix_spawnattr_setsigmask(&attr, &mask);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
	spawn_report("setsigmask", &attr);
	posix_spawnattr_destroy(&attr);

	CASE("spawn_many");
	/* The same sites again and again (the shim may rewrite them meanwhile). */
	for (int i = 0; i < 20; i++)
		spawn_report(i == 19 ? "many" : NULL, NULL);

	CASE("vfork_child_queries_sets_and_bad_pointers");
	/* Letters of USR2, INT, TERM, then results of the child's own calls, as an exit code
	 * sequence through a pipe written after each step. */
	int p[2];
	if (pipe(p))
		die("pipe");
	pid_t pid = vfork();
	if (pid == 0) {
		char out[16];
		int n = 0;
		out[n++] = letter(SIGUSR2);
		out[n++] = letter(SIGINT);
		out[n++] = letter(SIGTERM) == 'D' ? 'D' : 'h';
		/* A set of a blocked signal, then of an unblocked one, each read back. */
		sigset_t b;
		sigemptyset(&b);
		sigaddset(&b, SIGHUP);
		sigprocmask(SIG_BLOCK, &b, NULL);
		set(SIGHUP, SIG_DFL, 0);
		out[n++] = letter(SIGHUP);
		set(SIGWINCH, handler, 1);
		out[n++] = letter(SIGWINCH);
		/* Bad pointers and signals: the kernel's errors. */
		long r1 = syscall(SYS_rt_sigaction, SIGUSR2, NULL, (void *)8, 8);
		out[n++] = r1 == -1 && errno == EFAULT ? 'F' : 'x';
		long r2 = syscall(SYS_rt_sigaction, SIGUSR2, (void *)8, NULL, 8);
		out[n++] = r2 == -1 && errno == EFAULT ? 'F' : 'x';
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = SIG_DFL;
		out[n++] = sigaction(SIGKILL, &sa, NULL) == -1 && errno == EINVAL ? 'V' : 'x';
		out[n++] = syscall(SYS_rt_sigaction, SIGUSR2, NULL, &sa, 4) == -1 && errno == EINVAL ? 'V' : 'x';
		out[n++] = syscall(SYS_rt_sigaction, 65, NULL, &sa, 8) == -1 && errno == EINVAL ? 'V' : 'x';
		_exit(write(p[1], out, n) == n ? 0 : SETUP_FAIL);
	}
	if (pid < 0)
		die("vfork");
	close(p[1]);
	char got[16] = { 0 };
	ssize_t k = read(p[0], got, sizeof got - 1);
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	printf("vfork child: %.*s exit %d\n", (int)(k > 0 ? k : 0), got, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	/* The child's changes were to its own table. */
	struct sigaction now;
	sigaction(SIGHUP, NULL, &now);
	printf("parent SIGHUP still ignored: %d\n", now.sa_handler == SIG_IGN);
	sigaction(SIGWINCH, NULL, &now);
	printf("parent SIGWINCH still default: %d\n", now.sa_handler == SIG_DFL);
	return 0;
}
