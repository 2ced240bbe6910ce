/* Process lifetime: fork, exit, _exit, exec, SIGKILL, creator exit.
 * kernel.shm_rmid_forced=1 is in shm_rmid_forced.c. */
#include "common.h"

static void xpipe(int p[2])
{
	if (pipe(p))
		die("pipe");
}

static void xread(int fd)
{
	char c;
	if (read(fd, &c, 1) != 1)
		die("read");
}

static void xwrite(int fd)
{
	if (write(fd, "x", 1) != 1)
		die("write");
}

/* After exec: report what this new image sees, then wait to be released. */
static int exec_child(char **argv)
{
	int w = atoi(argv[2]), r = atoi(argv[3]), id = atoi(argv[4]);
	struct shmid_ds ds;
	char line[128];
	int n;
	if (shmctl(id, IPC_STAT, &ds) == -1)
		n = snprintf(line, sizeof line, "  exec'd child: IPC_STAT = -1 %s\n",
			     errname(errno));
	else
		n = snprintf(line, sizeof line, "  exec'd child: nattch=%lu lpid=%s\n",
			     (unsigned long)ds.shm_nattch,
			     ds.shm_lpid == getpid() ? "self" : "other");
	if (write(w, line, n) != n)
		die("write");
	close(w);
	xread(r);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "exec-child"))
		return exec_child(argv);
	setup();
	int id, p1[2], p2[2], st, one = 1;
	char *p;
	pid_t pid;

	CASE("proc_fork_inherits");
	id = SHOW(shmget(0x10040001, 4096, IPC_CREAT | 0600));
	p = AT(shmat(id, NULL, 0), NULL);
	strcpy(p, "from parent");
	xpipe(p1);
	xpipe(p2);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		strcpy(p + 100, "from child");
		xwrite(p1[1]);
		xread(p2[0]);
		_exit(strcmp(p, "from parent") ? 1 : 0);
	}
	g_child = pid;
	xread(p1[0]);
	show_nattch(id);
	printf("  child wrote: %s\n", p + 100);
	xwrite(p2[1]);
	show_status("child", wait_child(pid));
	stat_show(id);

	CASE("proc_child_shmdt");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		if (shmdt(p))
			_exit(1);
		xwrite(p1[1]);
		xread(p2[0]);
		_exit(0);
	}
	g_child = pid;
	xread(p1[0]);
	show_nattch(id);
	printf("  parent still sees: %s\n", p);
	xwrite(p2[1]);
	show_status("child", wait_child(pid));
	show_nattch(id);
	SHOW(shmdt(p));

	CASE("proc_child_attach_exit");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		if (shmat(id, NULL, 0) == (void *)-1 || shmat(id, NULL, SHM_RDONLY) == (void *)-1)
			_exit(1);
		xwrite(p1[1]);
		xread(p2[0]);
		exit(3);
	}
	g_child = pid;
	xread(p1[0]);
	show_nattch(id);
	xwrite(p2[1]);
	show_status("child", wait_child(pid));
	stat_show(id);

	CASE("proc_child_attach__exit");
	p = AT(shmat(id, NULL, 0), NULL);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		if (shmat(id, NULL, 0) == (void *)-1)
			_exit(1);
		xwrite(p1[1]);
		xread(p2[0]);
		_exit(4);
	}
	g_child = pid;
	xread(p1[0]);
	show_nattch(id);
	xwrite(p2[1]);
	show_status("child", wait_child(pid));
	show_nattch(id);

	CASE("proc_exec_drops_attachments");
	xpipe(p1);
	xpipe(p2);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		char a[3][16];
		snprintf(a[0], 16, "%d", p1[1]);
		snprintf(a[1], 16, "%d", p2[0]);
		snprintf(a[2], 16, "%d", id);
		if (shmat(id, NULL, 0) == (void *)-1)
			_exit(1);
		execl("/proc/self/exe", "shm_proc", "exec-child", a[0], a[1], a[2],
		      (char *)NULL);
		_exit(1);
	}
	g_child = pid;
	close(p1[1]);
	char buf[256];
	ssize_t n = read(p1[0], buf, sizeof buf - 1);
	if (n <= 0)
		die("read");
	buf[n] = 0;
	printf("%s", buf);
	show_nattch(id);
	xwrite(p2[1]);
	show_status("child", wait_child(pid));
	show_nattch(id);
	close(p1[0]);
	close(p2[0]);
	close(p2[1]);

	CASE("proc_sigkill_attached");
	xpipe(p1);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		if (shmat(id, NULL, 0) == (void *)-1)
			_exit(1);
		xwrite(p1[1]);
		for (;;)
			pause();
	}
	g_child = pid;
	xread(p1[0]);
	show_nattch(id);
	kill(pid, SIGKILL);
	show_status("child", wait_child(pid));
	show_nattch(id);
	SHOW(shmdt(p));
	stat_show(id);
	SHOW(shmctl(id, IPC_RMID, NULL));

	CASE("proc_outlives_creator");
	in_child(0, create_and_exit, &one);
	id = SHOW(shmget(0x10040005, 0, 0));
	stat_show(id);
	p = AT(shmat(id, NULL, SHM_RDONLY), NULL);
	printf("  data: %s\n", p);
	SHOW(shmdt(p));
	SHOW(shmctl(id, IPC_RMID, NULL));

	CASE("proc_fork_lpid_atime");
	id = SHOW(shmget(0x10040008, 4096, IPC_CREAT | 0600));
	p = AT(shmat(id, NULL, 0), NULL);
	time_t mark = next_second();
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		_exit(0);
	g_child = pid;
	st = wait_child(pid);
	struct shmid_ds ds;
	SHOW(shmctl(id, IPC_STAT, &ds));
	printf("  nattch=%lu lpid=%s atime>=mark=%d dtime>=mark=%d\n",
	       (unsigned long)ds.shm_nattch, pidrel(ds.shm_lpid),
	       ds.shm_atime >= mark, ds.shm_dtime >= mark);
	show_status("child", st);
	SHOW(shmdt(p));
	SHOW(shmctl(id, IPC_RMID, NULL));
	return 0;
}
