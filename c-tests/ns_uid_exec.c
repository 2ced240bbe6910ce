/* The IPC namespace follows the process tree: a child that drops its privileges (setgroups,
 * setresgid, setresuid to nobody) and then execs stays in its parent's namespace. The exec'd
 * image writes into an inherited pipe and an inherited AF_UNIX socket that the parent reads
 * back, and uses System V objects made before the drop, where kern_ipc_perm decides with its
 * new credentials (one allowed by the mode, one EACCES), before and after the exec. The same
 * after the child closed every other fd by close_range, set FD_CLOEXEC on every number and
 * closed them one by one, or by fclose (glibc's internal close), and from a posix_spawn (a vfork child) with closefrom, or dup2 over
 * nearly every number, that execs a helper which drops its privileges and execs the writer.
 * Run as root. */
#include "common.h"
#include <spawn.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/socket.h>

#define BIG (200 * 1024)

static unsigned char pattern(size_t i)
{
	return (unsigned char)(i * 7 + i / 251);
}

static void drop_privileges(void)
{
	if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) || setresuid(NOBODY, NOBODY, NOBODY))
		die("drop privileges");
}

static void exec_self(const char *role, const char *a, const char *b)
{
	execl("/proc/self/exe", "ns_uid_exec", role, a, b, (char *)NULL);
	die("exec");
}

static void write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			die("write");
		p += k;
		n -= k;
	}
}

/* The exec'd image: BIG bytes into the pipe, a line each way over the socket. */
static int writer(int pfd, int sfd)
{
	printf("  writer: uid=%d euid=%d gid=%d egid=%d groups=%d\n", (int)getuid(), (int)geteuid(),
	       (int)getgid(), (int)getegid(), getgroups(0, NULL));
	static unsigned char buf[BIG];
	for (size_t i = 0; i < BIG; i++)
		buf[i] = pattern(i);
	write_all(pfd, buf, BIG);
	close(pfd);
	const char hello[] = "hello from nobody";
	write_all(sfd, hello, sizeof hello);
	char reply[64] = "";
	ssize_t n = read(sfd, reply, sizeof reply - 1);
	printf("  writer: read %zd bytes from the socket: %s\n", n, n > 0 ? reply : "-");
	return 0;
}

/* The parent's end: sends its line, reads the pipe to its end and the socket's line. */
static void reader(int pfd, int sfd, pid_t child)
{
	const char ack[] = "ack from root";
	write_all(sfd, ack, sizeof ack);
	static unsigned char buf[BIG + 1];
	size_t got = 0;
	ssize_t n;
	while ((n = read(pfd, buf + got, sizeof buf - got)) > 0)
		got += n;
	size_t bad = 0;
	for (size_t i = 0; i < got; i++)
		bad += buf[i] != pattern(i);
	char line[64] = "";
	ssize_t m = read(sfd, line, sizeof line - 1);
	int st = wait_child(child);
	printf("  pipe: %zu bytes, %zu wrong, last read %zd\n", got, bad, n);
	printf("  socket: %zd bytes: %s\n", m, m > 0 ? line : "-");
	if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		show_status("child", st);
	close(pfd);
	close(sfd);
}

/* How far the loops over fd numbers go: RLIMIT_NOFILE, at most 4096. */
static int fd_top(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		die("getrlimit");
	return rl.rlim_cur < 4096 ? (int)rl.rlim_cur : 4096;
}

/* In the parent: the child's ends go, and the parent reads what the writer sends. */
static void parent_reads(pid_t child, int p[2], int sv[2])
{
	g_child = child;
	close(p[1]);
	close(sv[1]);
	reader(p[0], sv[0], child);
}

static void make_pair(int p[2], int sv[2])
{
	if (pipe(p) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		die("pipe, socketpair");
}

static void fmt(char *buf, int fd)
{
	snprintf(buf, 16, "%d", fd);
}

/* fork; the child drops its privileges, runs `prepare` and execs the writer on fds it returns. */
static void drop_and_exec(int (*prepare)(int p, int s, int *out_s))
{
	int p[2], sv[2];
	make_pair(p, sv);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		close(p[0]);
		close(sv[0]);
		drop_privileges();
		int s = sv[1];
		int w = prepare ? prepare(p[1], sv[1], &s) : p[1];
		char a[16], b[16];
		fmt(a, w);
		fmt(b, s);
		exec_self("writer", a, b);
	}
	parent_reads(pid, p, sv);
}

/* The writer's fds at 3 and 4; every other number closed, and marked close-on-exec first, by
 * close_range and one by one in ascending order. */
static int close_everything_else(int p, int s, int *out_s)
{
	int w = dup(p), t = dup(s);
	if (w < 0 || t < 0 || dup2(w, 3) != 3 || dup2(t, 4) != 4)
		die("dup2");
	if (syscall(SYS_close_range, 5, ~0U, CLOSE_RANGE_CLOEXEC))
		die("close_range cloexec");
	int top = fd_top();
	for (int fd = 5; fd < top; fd++)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
	if (syscall(SYS_close_range, 5, ~0U, 0))
		die("close_range");
	for (int fd = 5; fd < top; fd++)
		close(fd);
	*out_s = 4;
	return 3;
}

/* fdopen and fclose of a few files, so that glibc's internal fcntl and close call sites have
 * trapped twice and been rewritten (see the shim's sud/patch.rs). */
static void warm_fdopen_fclose(void)
{
	for (int i = 0; i < 4; i++) {
		int fd = open("/dev/null", O_RDONLY);
		FILE *f = fd < 0 ? NULL : fdopen(fd, "r");
		if (!f || fclose(f))
			die("fdopen /dev/null");
	}
}

/* The writer's fds at 3 and 4; every other number from 5 up closed by glibc's internal close
 * (fclose of a FILE fdopen'ed on it), from rewritten call sites. */
static int fclose_everything_else(int p, int s, int *out_s)
{
	int w = dup(p), t = dup(s);
	if (w < 0 || t < 0 || dup2(w, 3) != 3 || dup2(t, 4) != 4)
		die("dup2");
	warm_fdopen_fclose();
	for (int fd = 5, top = fd_top(); fd < top; fd++) {
		FILE *f = fdopen(fd, "r");
		if (!f)
			f = fdopen(fd, "w");
		if (f)
			fclose(f);
	}
	*out_s = 4;
	return 3;
}

/* Replaces nearly every number from 5 up with a copy of stdin, then closes them all. */
static int dup_over_everything(int p, int s, int *out_s)
{
	int w = dup(p), t = dup(s);
	if (w < 0 || t < 0 || dup2(w, 3) != 3 || dup2(t, 4) != 4)
		die("dup2");
	int top = fd_top();
	/* A table with no free number at all would leave the shim's region descriptors nowhere. */
	for (int fd = 5; fd < top - 16; fd++)
		dup2(0, fd);
	for (int fd = 5; fd < top; fd++)
		close(fd);
	*out_s = 4;
	return 3;
}

/* System V objects made by root before the drop, used by nobody before and after its exec. */
struct objs {
	int sem_open, sem_closed, msq, shm;
};

static void use_objects(const char *when, struct objs *o)
{
	struct sembuf up = { 0, 1, IPC_NOWAIT };
	printf("  %s: uid=%d\n", when, (int)geteuid());
	SHOW(semop(o->sem_open, &up, 1));
	SHOW(semop(o->sem_closed, &up, 1));
	struct {
		long type;
		char text[32];
	} m = { 1, "" };
	snprintf(m.text, sizeof m.text, "%s", when);
	SHOW(msgsnd(o->msq, &m, sizeof m.text, IPC_NOWAIT));
	SHOW(msgrcv(o->msq, &m, sizeof m.text, 0, IPC_NOWAIT));
	char *ro = AT(shmat(o->shm, NULL, SHM_RDONLY), NULL);
	if (ro != (void *)-1) {
		printf("  it reads: %s\n", ro);
		shmdt(ro);
	}
	AT(shmat(o->shm, NULL, 0), NULL);
	struct semid_ds ds;
	SHOW(semctl(o->sem_closed, 0, IPC_STAT, &ds));
}

static int sysv_image(char **argv)
{
	struct objs o;
	if (sscanf(argv[2], "%d,%d", &o.sem_open, &o.sem_closed) != 2 || sscanf(argv[3], "%d,%d", &o.msq, &o.shm) != 2)
		return 2;
	use_objects("after exec", &o);
	return 0;
}

static void sysv_across_drop_and_exec(void)
{
	struct objs o;
	o.sem_open = semget(IPC_PRIVATE, 1, 0666);
	o.sem_closed = semget(IPC_PRIVATE, 1, 0600);
	o.msq = msgget(IPC_PRIVATE, 0622);
	o.shm = shmget(IPC_PRIVATE, PAGE, 0644);
	if (o.sem_open < 0 || o.sem_closed < 0 || o.msq < 0 || o.shm < 0)
		die("make objects");
	char *mem = shmat(o.shm, NULL, 0);
	if (mem == (void *)-1)
		die("shmat");
	strcpy(mem, "written by root");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		drop_privileges();
		use_objects("before exec", &o);
		char a[32], b[32];
		snprintf(a, sizeof a, "%d,%d", o.sem_open, o.sem_closed);
		snprintf(b, sizeof b, "%d,%d", o.msq, o.shm);
		exec_self("sysv", a, b);
	}
	g_child = pid;
	int st = wait_child(pid);
	if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		show_status("child", st);
	printf("  values: 0666 set %d, 0600 set %d\n", semctl(o.sem_open, 0, GETVAL),
	       semctl(o.sem_closed, 0, GETVAL));
	struct {
		long type;
		char text[32];
	} m;
	while (msgrcv(o.msq, &m, sizeof m.text, 0, IPC_NOWAIT) >= 0)
		printf("  queued: %s\n", m.text);
	struct msqid_ds q;
	if (msgctl(o.msq, IPC_STAT, &q) == 0)
		printf("  last sender: %s\n", pidrel(q.msg_lspid));
	shmdt(mem);
	semctl(o.sem_open, 0, IPC_RMID);
	semctl(o.sem_closed, 0, IPC_RMID);
	msgctl(o.msq, IPC_RMID, NULL);
	shmctl(o.shm, IPC_RMID, NULL);
}

/* Spawned by posix_spawn (a vfork child that closed every fd from 5 up): drops its privileges
 * and execs the writer. */
static int dropper(char **argv)
{
	drop_privileges();
	exec_self("writer", argv[2], argv[3]);
	return 2;
}

/* posix_spawn of the dropper with the pipe and socket at 3 and 4, and every other number from
 * 5 up closed (closefrom) or, with `fill`, replaced by a copy of stdin first (dup2 in the vfork
 * child, over nearly the whole table). */
static void spawn_dropper(int fill)
{
	int p[2], sv[2];
	make_pair(p, sv);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 3);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 4);
	if (fill) {
		for (int fd = 5, top = fd_top(); fd < top - 16; fd++)
			posix_spawn_file_actions_adddup2(&fa, 0, fd);
	}
	posix_spawn_file_actions_addclosefrom_np(&fa, 5);
	char *args[] = { "ns_uid_exec", "dropper", "3", "4", NULL };
	pid_t pid;
	int e = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, args, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (e) {
		errno = e;
		die("posix_spawn");
	}
	parent_reads(pid, p, sv);
}

/* A child that is nobody by its real uid (root by its effective one) posix_spawns the writer
 * with POSIX_SPAWN_RESETIDS, dup2 over nearly every number and closefrom: the spawned image is
 * nobody, which could not find the namespace by name, so it must have been handed the region
 * at the numbers the vfork child moved it to. */
static void spawn_resetids(void)
{
	int p[2], sv[2];
	make_pair(p, sv);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		close(p[0]);
		close(sv[0]);
		if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) || setresuid(NOBODY, 0, 0))
			die("half drop");
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, p[1], 3);
		posix_spawn_file_actions_adddup2(&fa, sv[1], 4);
		for (int fd = 5, top = fd_top(); fd < top - 16; fd++)
			posix_spawn_file_actions_adddup2(&fa, 0, fd);
		posix_spawn_file_actions_addclosefrom_np(&fa, 5);
		posix_spawnattr_t at;
		posix_spawnattr_init(&at);
		posix_spawnattr_setflags(&at, POSIX_SPAWN_RESETIDS);
		char *args[] = { "ns_uid_exec", "writer", "3", "4", NULL };
		pid_t w;
		int e = posix_spawn(&w, "/proc/self/exe", &fa, &at, args, environ);
		if (e) {
			errno = e;
			die("posix_spawn");
		}
		close(p[1]);
		close(sv[1]);
		int st;
		if (waitpid(w, &st, 0) != w)
			die("waitpid");
		_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
	parent_reads(pid, p, sv);
}

int main(int argc, char **argv)
{
	setup();
	if (argc == 4 && !strcmp(argv[1], "writer"))
		return writer(atoi(argv[2]), atoi(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "sysv"))
		return sysv_image(argv);
	if (argc == 4 && !strcmp(argv[1], "dropper"))
		return dropper(argv);
	if (geteuid() != 0) {
		printf("needs root\n");
		return 1;
	}

	CASE("drop_exec_pipe_and_socket");
	drop_and_exec(NULL);

	CASE("drop_exec_after_close_range_cloexec_and_close_loop");
	drop_and_exec(close_everything_else);

	CASE("drop_exec_after_dup2_over_every_fd");
	drop_and_exec(dup_over_everything);

	CASE("drop_exec_after_fclose_of_every_fd");
	drop_and_exec(fclose_everything_else);

	CASE("drop_exec_sysv_kern_ipc_perm");
	sysv_across_drop_and_exec();

	CASE("posix_spawn_closefrom_then_drop_exec");
	spawn_dropper(0);

	CASE("posix_spawn_dup2_over_every_fd_then_drop_exec");
	spawn_dropper(1);

	CASE("posix_spawn_resetids_dup2_over_every_fd");
	spawn_resetids();

	/* What the vfork children did to their own fd tables left ours as it was. */
	CASE("drop_exec_after_the_spawns");
	drop_and_exec(NULL);
	return 0;
}
