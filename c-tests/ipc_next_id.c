/* /proc/sys/kernel/{shm,sem,msg}_next_id (ipc_idr_alloc): the next object of that family gets
 * the id written there, or the lowest free index from it with its sequence, and the file goes
 * back to -1 once used, taken or not; an allocation refused before the idr (ENOSPC by count)
 * leaves it set. Writes follow proc_dointvec_minmax in [0, INT_MAX]. Only a process with
 * CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN may write: an fd opened before dropping them gets
 * EPERM, and an exec'd unprivileged helper cannot open the file for writing (EACCES) but reads
 * it. Run as root. */
#include "common.h"
#include <sys/msg.h>
#include <sys/sem.h>

static const char *const FILES[] = { "/proc/sys/kernel/shm_next_id", "/proc/sys/kernel/sem_next_id",
				     "/proc/sys/kernel/msg_next_id" };

static void show_file(const char *path)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		printf("  open(%s) = -1 %s\n", path + 17, errname(errno));
		return;
	}
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n < 0) {
		printf("  read(%s) = -1 %s\n", path + 17, errname(errno));
		return;
	}
	buf[n] = 0;
	printf("  %s: %s", path + 17, buf);
}

static void show_all(void)
{
	for (int i = 0; i < 3; i++)
		show_file(FILES[i]);
}

static void put(const char *path, const char *text)
{
	errno = 0;
	int fd = open(path, O_WRONLY);
	if (fd < 0) {
		printf("  open(%s, O_WRONLY) = -1 %s\n", path + 17, errname(errno));
		return;
	}
	errno = 0;
	ssize_t n = write(fd, text, strlen(text));
	printf("  write(%s, \"%.*s\") = %zd %s\n", path + 17, (int)strcspn(text, "\n"), text, n,
	       n < 0 ? errname(errno) : "");
	close(fd);
}

static int make(int family)
{
	switch (family) {
	case 0:
		return shmget(IPC_PRIVATE, 4096, 0600);
	case 1:
		return semget(IPC_PRIVATE, 1, 0600);
	}
	return msgget(IPC_PRIVATE, 0600);
}

static void drop(int family, int id)
{
	if (family == 0)
		shmctl(id, IPC_RMID, NULL);
	else if (family == 1)
		semctl(id, 0, IPC_RMID);
	else
		msgctl(id, IPC_RMID, NULL);
}

static void show_id(const char *what, int id)
{
	if (id < 0)
		printf("  %s = -1 %s\n", what, errname(errno));
	else
		printf("  %s = %d\n", what, id);
}

static void family_cases(int f)
{
	const char *path = FILES[f];
	int ids[6];
	put(path, "1234\n");
	show_file(path);
	ids[0] = make(f);
	show_id("with next_id 1234", ids[0]);
	show_file(path);
	ids[1] = make(f);
	show_id("then without", ids[1]);
	/* Index 0 is taken now: the lowest free index from 0 with sequence 0. */
	put(path, "0");
	ids[2] = make(f);
	show_id("with next_id 0 (taken)", ids[2]);
	/* A sequence and an index. */
	put(path, "98309");
	ids[3] = make(f);
	show_id("with next_id 3*32768+5", ids[3]);
	ids[4] = make(f);
	show_id("then without", ids[4]);
	put(path, "0x10");
	show_file(path);
	ids[5] = make(f);
	show_id("with next_id 0x10", ids[5]);
	for (int i = 0; i < 6; i++)
		if (ids[i] >= 0)
			drop(f, ids[i]);
}

static void bad_writes(void)
{
	const char *path = FILES[2];
	put(path, "77");
	put(path, "-1");
	show_file(path);
	put(path, "2147483648");
	put(path, "2147483647");
	show_file(path);
	put(path, "abc");
	put(path, "  12  \n");
	show_file(path);
	put(path, "5 6");
	show_file(path);
	/* Written at an offset: ignored and reported done (sysctl_writes_strict). */
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		die("open");
	SHOW(pwrite(fd, "99", 2, 1));
	close(fd);
	show_file(path);
	int id = msgget(IPC_PRIVATE, 0600);
	show_id("msgget", id);
	msgctl(id, IPC_RMID, NULL);
	show_file(path);
}

/* Refused by count before the idr: next_id stays. */
static void enospc(void)
{
	int fd = open("/proc/sys/kernel/msgmni", O_RDWR);
	char old[32] = "";
	if (fd < 0 || read(fd, old, sizeof old - 1) <= 0)
		die("msgmni");
	close(fd);
	int a = msgget(IPC_PRIVATE, 0600);
	show_id("msgget", a);
	put("/proc/sys/kernel/msgmni", "1");
	put(FILES[2], "500");
	show_id("msgget over msgmni", msgget(IPC_PRIVATE, 0600));
	show_file(FILES[2]);
	put("/proc/sys/kernel/msgmni", old);
	int b = msgget(IPC_PRIVATE, 0600);
	show_id("msgget", b);
	show_file(FILES[2]);
	msgctl(a, IPC_RMID, NULL);
	msgctl(b, IPC_RMID, NULL);
}

/* The exec'd unprivileged helper. */
static int helper(void)
{
	printf("  helper: euid=%d\n", (int)geteuid());
	show_all();
	put(FILES[0], "5");
	return 0;
}

static void unprivileged(void)
{
	put(FILES[1], "4321");
	int wfd = open(FILES[1], O_WRONLY);
	if (wfd < 0)
		die("open");
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
		    setresuid(NOBODY, NOBODY, NOBODY))
			die("drop privileges");
		errno = 0;
		ssize_t n = write(wfd, "7", 1);
		printf("  write on an fd opened before the drop = %zd %s\n", n, n < 0 ? errname(errno) : "");
		close(wfd);
		execl("/proc/self/exe", "ipc_next_id", "helper", (char *)NULL);
		die("exec");
	}
	close(wfd);
	g_child = pid;
	int st = wait_child(pid);
	if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		show_status("helper", st);
	show_all();
	int id = semget(IPC_PRIVATE, 1, 0600);
	show_id("semget", id);
	semctl(id, 0, IPC_RMID);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "helper") == 0) {
		setvbuf(stdout, NULL, _IONBF, 0);
		return helper();
	}
	setup();

	CASE("next_id_initial");
	show_all();
	struct stat st;
	for (int i = 0; i < 3; i++)
		if (stat(FILES[i], &st) == 0)
			printf("  %s mode %o\n", FILES[i] + 17, st.st_mode & 07777);

	CASE("next_id_shm");
	family_cases(0);
	CASE("next_id_sem");
	family_cases(1);
	CASE("next_id_msg");
	family_cases(2);

	CASE("next_id_writes");
	bad_writes();

	CASE("next_id_enospc");
	enospc();

	CASE("next_id_unprivileged");
	unprivileged();
	return 0;
}
