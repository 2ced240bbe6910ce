/* New IPC namespaces (issue 21): unshare(CLONE_NEWIPC), clone and clone3 with CLONE_NEWIPC,
 * and setns, as copy_ipcs, ksys_unshare and commit_nsset have them:
 * - the new namespace starts empty (ids from 0, keys free, /proc/sysvipc empty, the default
 *   limits and -1 next ids), and its descendants (fork, exec, threads) share it;
 * - objects of the old one stay as they were for the others; an attachment made before
 *   stays mapped and counted there; unshare applies the SEM_UNDO adjustments and orphans
 *   the segments made (shm_rmid_forced destroys those unattached);
 * - pipes, FIFOs and sockets are no IPC namespace's: those open before still work, and new
 *   ones meet across namespaces;
 * - setns goes back to the first namespace and forth to the new one (with its undo applied),
 *   and fails as the kernel's does (a namespace of another type, an unprivileged caller);
 * - a thread that unshares alone moves alone, with the threads it then makes.
 * Run as root. */
// sysctl: msgmni=100
#include "common.h"
#include <pthread.h>
#include <sched.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <linux/sched.h>

#define KSEM 0x21000001
#define KSHM 0x21000002
#define KMSG 0x21000003
#define KNEW 0x21000004

static void show_id(const char *what, long id)
{
	if (id < 0)
		printf("  %s = -1 %s\n", what, errname(errno));
	else
		printf("  %s = %ld\n", what, id);
}

static int lines_of(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	int n = 0, c;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static void show_file(const char *path)
{
	char buf[64] = "";
	FILE *f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof buf, f))
		printf("  %s: unreadable\n", path);
	else
		printf("  %s: %s", path, buf);
	if (f)
		fclose(f);
}

/* What this namespace holds of ours. */
static void look(const char *who)
{
	printf("  [%s]\n", who);
	show_id("semget(KSEM)", semget(KSEM, 0, 0));
	show_id("shmget(KSHM)", shmget(KSHM, 0, 0));
	show_id("msgget(KMSG)", msgget(KMSG, 0));
	show_id("semget(KNEW)", semget(KNEW, 0, 0));
	printf("  /proc/sysvipc lines: shm %d sem %d msg %d\n", lines_of("/proc/sysvipc/shm"),
	       lines_of("/proc/sysvipc/sem"), lines_of("/proc/sysvipc/msg"));
}

static long ns_ino(const char *path)
{
	struct stat st;
	return stat(path, &st) ? -1 : (long)st.st_ino;
}

static int semval(int id)
{
	return semctl(id, 0, GETVAL);
}

/* ---- unshare ---- */

struct shared {
	int semid, shmid, msqid;
	char *seg;
	int p[2];   /* parent <- child: "ready" */
	int q[2];   /* parent -> child: "go on" */
	int sv[2];  /* a socketpair made before */
	int pp[2];  /* a pipe made before */
};

static void child_unshare(struct shared *s)
{
	/* Attached before: stays ours after the unshare. */
	strcpy(s->seg, "written before unshare");
	struct sembuf up = { 0, 1, SEM_UNDO };
	if (semop(s->semid, &up, 1))
		die("semop");
	int made = shmget(0x21000009, 4096, IPC_CREAT | 0600);
	show_id("segment made before unshare (unattached)", made >= 0 ? 0 : -1);
	long before = ns_ino("/proc/self/ns/ipc");
	errno = 0;
	long r = unshare(CLONE_NEWIPC);
	show_id("unshare(CLONE_NEWIPC)", r);
	printf("  kernel namespace changed: %s\n", ns_ino("/proc/self/ns/ipc") != before ? "yes" : "no");
	look("child after unshare");
	show_file("/proc/sys/kernel/msgmni");
	show_file("/proc/sys/kernel/shmmni");
	show_file("/proc/sys/kernel/sem_next_id");
	show_id("semget(KSEM, IPC_CREAT | IPC_EXCL)", semget(KSEM, 1, IPC_CREAT | IPC_EXCL | 0600));
	show_id("shmget(IPC_PRIVATE)", shmget(IPC_PRIVATE, 4096, 0600));
	show_id("msgget(IPC_PRIVATE)", msgget(IPC_PRIVATE, 0600));
	show_id("semget(KNEW, IPC_CREAT)", semget(KNEW, 1, IPC_CREAT | 0600));
	printf("  old attachment reads \"%s\"\n", s->seg);
	strcpy(s->seg, "written after unshare");
	/* Pipes and sockets made before. */
	IOSHOW(write(s->pp[1], "pipe", 4));
	IOSHOW(write(s->sv[1], "socket", 6));
	/* A pipe made after, to a grandchild that stays in this namespace. */
	int p[2];
	io_pipe(p);
	pid_t g = fork();
	if (g == 0) {
		look("grandchild");
		if (write(p[1], "from the grandchild", 19) != 19)
			_exit(3);
		_exit(0);
	}
	close(p[1]);
	char buf[64];
	long n = read(p[0], buf, sizeof buf);
	printf("  new pipe: %ld \"%.*s\"\n", n, (int)(n > 0 ? n : 0), buf);
	waitpid(g, NULL, 0);
	/* Tell the parent we are done; wait until it looked. */
	if (write(s->p[1], "r", 1) != 1 || read(s->q[0], buf, 1) != 1)
		die("sync");
}

static void unshare_cases(void)
{
	CASE("unshare_new_namespace");
	struct shared s;
	s.semid = semget(KSEM, 1, IPC_CREAT | 0600);
	s.shmid = shmget(KSHM, 4096, IPC_CREAT | 0600);
	s.msqid = msgget(KMSG, IPC_CREAT | 0600);
	if (s.semid < 0 || s.shmid < 0 || s.msqid < 0)
		die("objects");
	s.seg = shmat(s.shmid, NULL, 0);
	if (s.seg == (void *)-1)
		die("shmat");
	io_pipe(s.p);
	io_pipe(s.q);
	io_pipe(s.pp);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, s.sv))
		die("socketpair");
	int fd = open("/proc/sys/kernel/shm_rmid_forced", O_WRONLY);
	if (fd < 0 || write(fd, "1", 1) != 1)
		die("shm_rmid_forced");
	close(fd);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		child_unshare(&s);
		_exit(0);
	}
	g_child = pid;
	char c;
	if (read(s.p[0], &c, 1) != 1)
		die("sync");
	look("parent, the child in its namespace");
	printf("  semval with the child's undo applied at unshare: %d\n", semval(s.semid));
	show_nattch(s.shmid);
	printf("  segment reads \"%s\"\n", s.seg);
	show_id("the child's unattached segment, shm_rmid_forced", shmget(0x21000009, 0, 0));
	char buf[16];
	long n = read(s.pp[0], buf, sizeof buf);
	printf("  old pipe: %ld \"%.*s\"\n", n, (int)(n > 0 ? n : 0), buf);
	n = read(s.sv[0], buf, sizeof buf);
	printf("  old socket: %ld \"%.*s\"\n", n, (int)(n > 0 ? n : 0), buf);
	if (write(s.q[1], "g", 1) != 1)
		die("sync");
	show_status("child", wait_child(pid));
	show_nattch(s.shmid);
	fd = open("/proc/sys/kernel/shm_rmid_forced", O_WRONLY);
	if (fd < 0 || write(fd, "0", 1) != 1)
		die("shm_rmid_forced");
	close(fd);
	shmdt(s.seg);
	closep(s.p);
	closep(s.q);
	closep(s.pp);
	closep(s.sv);
}

/* ---- clone, clone3 ---- */

static int in_clone(void *arg)
{
	const char *how = arg;
	printf("  [%s child]\n", how);
	show_id("semget(KSEM)", semget(KSEM, 0, 0));
	show_id("semget(KNEW, IPC_CREAT | IPC_EXCL)", semget(KNEW, 1, IPC_CREAT | IPC_EXCL | 0600));
	fflush(stdout);
	pid_t g = fork();
	if (g == 0) {
		show_id("grandchild: semget(KNEW)", semget(KNEW, 0, 0));
		_exit(0);
	}
	waitpid(g, NULL, 0);
	/* An exec'd image stays in it. */
	g = fork();
	if (g == 0) {
		execl("/proc/self/exe", "ipc_namespace", "look", (char *)NULL);
		_exit(3);
	}
	waitpid(g, NULL, 0);
	return 0;
}

static void clone_cases(void)
{
	CASE("clone_newipc");
	fflush(stdout);
	pid_t pid = syscall(SYS_clone, CLONE_NEWIPC | SIGCHLD, 0, 0, 0, 0);
	if (pid == 0)
		_exit(in_clone("clone"));
	g_child = pid;
	show_status("child", wait_child(pid));

	CASE("clone3_newipc");
	struct clone_args ca;
	memset(&ca, 0, sizeof ca);
	ca.flags = CLONE_NEWIPC;
	ca.exit_signal = SIGCHLD;
	fflush(stdout);
	pid = syscall(SYS_clone3, &ca, sizeof ca);
	if (pid == 0)
		_exit(in_clone("clone3"));
	if (pid < 0)
		printf("  clone3 = -1 %s\n", errname(errno));
	else
		show_status("child", wait_child(pid));

	CASE("glibc_clone_newipc_own_stack");
	size_t size = 256 << 10;
	char *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (stack == MAP_FAILED)
		die("mmap");
	fflush(stdout);
	pid = clone(in_clone, stack + size, CLONE_NEWIPC | SIGCHLD, "glibc clone");
	if (pid < 0)
		die("clone");
	show_status("child", wait_child(pid));
	munmap(stack, size);
	look("parent");
}

/* ---- setns ---- */

static void setns_child(void *arg)
{
	(void)arg;
	int first = open("/proc/self/ns/ipc", O_RDONLY);
	int uts = open("/proc/self/ns/uts", O_RDONLY);
	if (first < 0 || uts < 0)
		die("open ns");
	if (unshare(CLONE_NEWIPC))
		die("unshare");
	int second = open("/proc/self/ns/ipc", O_RDONLY);
	int id = semget(KNEW, 1, IPC_CREAT | 0600);
	struct sembuf up = { 0, 3, SEM_UNDO };
	if (id < 0 || semop(id, &up, 1))
		die("semop");
	printf("  in the new one: semval %d\n", semval(id));
	IOSHOW(setns(uts, CLONE_NEWIPC));
	IOSHOW(setns(first, CLONE_NEWIPC));
	look("back in the first");
	IOSHOW(setns(second, 0));
	look("in the new one again");
	printf("  its semval after the undo applied by setns: %d\n", semval(id));
	IOSHOW(setns(first, 0));
	show_id("semget(KSEM)", semget(KSEM, 0, 0));
	close(first);
	close(second);
	close(uts);
}

static void unprivileged_helper(void)
{
	printf("  helper: euid=%d\n", (int)geteuid());
	IOSHOW(unshare(CLONE_NEWIPC));
	int fd = open("/proc/1/ns/ipc", O_RDONLY);
	int self = open("/proc/self/ns/ipc", O_RDONLY);
	IOSHOW(setns(self, CLONE_NEWIPC));
	look("helper");
	if (fd >= 0)
		close(fd);
	close(self);
}

static void setns_cases(void)
{
	CASE("setns_back_and_forth");
	in_child(0, setns_child, NULL);

	CASE("unprivileged");
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) || setresuid(NOBODY, NOBODY, NOBODY))
			die("drop privileges");
		execl("/proc/self/exe", "ipc_namespace", "unprivileged", (char *)NULL);
		_exit(3);
	}
	g_child = pid;
	show_status("helper", wait_child(pid));
}

/* ---- threads ---- */

static void *second_thread(void *arg)
{
	(void)arg;
	printf("  [thread made by the thread that moved]\n");
	show_id("semget(KSEM)", semget(KSEM, 0, 0));
	show_id("semget(KNEW)", semget(KNEW, 0, 0));
	return NULL;
}

static void *moving_thread(void *arg)
{
	(void)arg;
	if (unshare(CLONE_NEWIPC))
		die("unshare");
	printf("  [thread after unshare]\n");
	show_id("semget(KSEM)", semget(KSEM, 0, 0));
	show_id("semget(KNEW, IPC_CREAT)", semget(KNEW, 1, IPC_CREAT | 0600));
	pthread_t t;
	if (pthread_create(&t, NULL, second_thread, NULL))
		die("pthread_create");
	pthread_join(t, NULL);
	return NULL;
}

static void thread_cases(void)
{
	CASE("thread_unshares_alone");
	long before = ns_ino("/proc/thread-self/ns/ipc");
	pthread_t t;
	if (pthread_create(&t, NULL, moving_thread, NULL))
		die("pthread_create");
	pthread_join(t, NULL);
	printf("  [main thread]\n");
	printf("  its kernel namespace unchanged: %s\n", ns_ino("/proc/thread-self/ns/ipc") == before ? "yes" : "no");
	show_id("semget(KSEM)", semget(KSEM, 0, 0));
	show_id("semget(KNEW)", semget(KNEW, 0, 0));
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		setvbuf(stdout, NULL, _IONBF, 0);
		if (strcmp(argv[1], "look") == 0) {
			look("exec'd image");
			return 0;
		}
		unprivileged_helper();
		return 0;
	}
	setup();
	unshare_cases();
	clone_cases();
	setns_cases();
	thread_cases();
	return 0;
}
