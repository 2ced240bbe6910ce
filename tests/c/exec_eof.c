/* How late end of file comes after an exec takes the last writer: `exec_eof MODE N HELPER`
 * spawns N children and prints the median and 90th percentile, in microseconds, of the
 * time from the child's stamp to the parent's read returning 0.
 *   cloexec: the child stamps and execs HELPER with the write end O_CLOEXEC; HELPER ("hold")
 *            stays alive until the parent saw end of file.
 *   exit:    the write end is inherited by HELPER ("exit"), which never uses it, stamps and
 *            exits.
 * Stamps go through a memfd (fd 50), which the exec'd image inherits. HELPER may be this
 * program (which loads the shim when the parent does) or a static build of it (which never
 * does). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STAMP_FD 50
#define HOLD_FD 51

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void stamp(void)
{
	long long t = now_ns();
	if (pwrite(STAMP_FD, &t, sizeof t, 0) != sizeof t)
		_exit(3);
}

static int cmp(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "hold")) {
		char c;
		return read(HOLD_FD, &c, 1) < 0;
	}
	if (argc == 2 && !strcmp(argv[1], "exit")) {
		stamp();
		return 0;
	}
	if (argc != 4)
		return 2;
	int cloexec = !strcmp(argv[1], "cloexec"), n = atoi(argv[2]);
	long long *lat = calloc(n, sizeof *lat);
	int m = memfd_create("stamps", 0);
	if (!lat || m < 0 || dup2(m, STAMP_FD) != STAMP_FD)
		return 2;
	for (int i = 0; i < n; i++) {
		int p[2], hold[2];
		if (pipe2(p, cloexec ? O_CLOEXEC : 0) || pipe(hold) || dup2(hold[0], HOLD_FD) != HOLD_FD)
			return 2;
		pid_t pid = fork();
		if (pid == 0) {
			close(p[0]);
			close(hold[1]);
			if (cloexec)
				stamp();
			execl(argv[3], argv[3], cloexec ? "hold" : "exit", (char *)NULL);
			_exit(127);
		}
		close(p[1]);
		close(HOLD_FD);
		close(hold[0]);
		char c;
		if (read(p[0], &c, 1) != 0)
			return 1;
		long long eof = now_ns(), t;
		if (pread(STAMP_FD, &t, sizeof t, 0) != sizeof t)
			return 1;
		lat[i] = (eof - t) / 1000;
		close(hold[1]);
		close(p[0]);
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
			return 1;
	}
	qsort(lat, n, sizeof *lat, cmp);
	printf("%lld %lld\n", lat[n / 2], lat[n * 9 / 10]);
	return 0;
}
