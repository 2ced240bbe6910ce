/* A segment of argv[1] MiB with key 0x5eed0001, shared by two processes: a child attaches it by
 * key and writes every page, the parent attaches it, checks every page and writes its own mark
 * in each (and a fork of it sees them through the attachment it inherits), the child checks
 * those; both detach, then the parent removes it. With argv[2], that
 * shell command runs while both are attached (the test takes its snapshots there); its output
 * is its own. Prints what each step saw, never ids, pids or addresses. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEY 0x5eed0001
#define PAGE 4096

static void die(const char *what)
{
	printf("%s: %s\n", what, strerror(errno));
	fflush(stdout);
	_exit(1);
}

static void stat_line(int id, const char *when)
{
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds) < 0) {
		printf("%s: IPC_STAT: %s\n", when, strerror(errno));
		return;
	}
	printf("%s: size %zu nattch %lu mode %o cpid is the parent %d lpid is the parent %d\n", when,
	       ds.shm_segsz, (unsigned long)ds.shm_nattch, ds.shm_perm.mode & 0777,
	       ds.shm_cpid == getpid(), ds.shm_lpid == getpid());
}

/* Waits for one byte on fd. */
static void await(int fd)
{
	char c;
	if (read(fd, &c, 1) != 1)
		die("read");
}

static void tell(int fd)
{
	if (write(fd, "x", 1) != 1)
		die("write");
}

int main(int argc, char **argv)
{
	size_t size = (size_t)atol(argc > 1 ? argv[1] : "64") << 20;
	size_t pages = size / PAGE;
	int id = shmget(KEY, size, IPC_CREAT | IPC_EXCL | 0640);
	if (id < 0)
		die("shmget");
	int to_child[2], to_parent[2];
	if (pipe(to_child) < 0 || pipe(to_parent) < 0)
		die("pipe");
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		int cid = shmget(KEY, 0, 0);
		if (cid != id)
			die("child shmget");
		unsigned char *p = shmat(cid, NULL, 0);
		if (p == (void *)-1)
			die("child shmat");
		for (size_t i = 0; i < pages; i++)
			memset(p + i * PAGE, (int)(i % 251) + 1, PAGE / 2);
		tell(to_parent[1]);
		await(to_child[0]);
		size_t bad = 0;
		for (size_t i = 0; i < pages; i++)
			bad += p[i * PAGE + PAGE - 1] != (unsigned char)(i % 241) + 2;
		printf("child: %zu pages, %zu without the parent's mark\n", pages, bad);
		if (shmdt(p) < 0)
			die("child shmdt");
		fflush(stdout);
		_exit(0);
	}
	await(to_parent[0]);
	unsigned char *q = shmat(id, NULL, 0);
	if (q == (void *)-1)
		die("shmat");
	size_t bad = 0;
	unsigned long sum = 0;
	for (size_t i = 0; i < pages; i++) {
		bad += q[i * PAGE] != (unsigned char)(i % 251) + 1 || q[i * PAGE + PAGE / 2] != 0;
		sum += q[i * PAGE + PAGE / 2 - 1];
		q[i * PAGE + PAGE - 1] = (unsigned char)(i % 241) + 2;
	}
	printf("parent: %zu pages, %zu not as the child wrote them, sum %lu\n", pages, bad, sum);
	stat_line(id, "both attached");
	/* A fork inherits the attachment; its exit drops it. */
	fflush(stdout);
	pid_t inheritor = fork();
	if (inheritor < 0)
		die("fork");
	if (inheritor == 0) {
		stat_line(id, "forked");
		printf("forked: first page %s\n", q[0] == 1 && q[PAGE - 1] == 2 ? "as written" : "wrong");
		fflush(stdout);
		_exit(0);
	}
	if (waitpid(inheritor, &(int){0}, 0) != inheritor)
		die("waitpid");
	stat_line(id, "fork exited");
	if (argc > 2) {
		fflush(stdout);
		if (system(argv[2]) != 0)
			printf("snapshot command failed\n");
	}
	fflush(stdout);
	tell(to_child[1]);
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		printf("child failed\n");
	stat_line(id, "child detached");
	if (shmdt(q) < 0)
		die("shmdt");
	stat_line(id, "both detached");
	if (shmctl(id, IPC_RMID, NULL) < 0)
		die("IPC_RMID");
	stat_line(id, "removed");
	return 0;
}
