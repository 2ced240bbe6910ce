/* Every family ipcshim serves, reached by raw `syscall` instructions (inline assembly, as a
 * libc that issues them directly or a program's own stubs do) rather than through libc's
 * functions: System V shared memory (with a fork between a raw shmat and its shmdt, whose
 * attachment the child inherits), semaphores and message queues, pipes, AF_UNIX socketpairs,
 * epoll and poll. The shim run's seccomp filter makes the kernel's own System V calls fail and
 * its strace check rejects data moved through kernel pipes and sockets: only calls the
 * catch-all served give the kernel's answers. */
#include "common.h"
#include <poll.h>
#include <sys/epoll.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/socket.h>

/* One raw system call from a site of its own (not inlined: the number arrives in a register,
 * so it is never a `mov $NR, %eax; syscall` site that could be rewritten). */
static __attribute__((noinline)) long raw6(long nr, long a1, long a2, long a3, long a4, long a5,
					   long a6)
{
	long r;
	register long r10 __asm__("r10") = a4;
	register long r8 __asm__("r8") = a5;
	register long r9 __asm__("r9") = a6;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return r;
}

static long raw(long nr, long a1, long a2, long a3, long a4, long a5)
{
	return raw6(nr, a1, a2, a3, a4, a5, 0);
}

/* Prints a kernel-style result the way SHOW prints a libc one. */
static long show_raw(const char *what, long r)
{
	if (r < 0 && r > -4096)
		printf("%s = -1 %s\n", what, errname((int)-r));
	else
		printf("%s = %ld\n", what, r);
	return r;
}

#define RAW(name, ...) show_raw(#name "(" #__VA_ARGS__ ")", raw(SYS_##name, __VA_ARGS__))

static void raw_stat(int id)
{
	struct shmid_ds d;
	long r = raw(SYS_shmctl, id, IPC_STAT, (long)&d, 0, 0);
	if (r < 0)
		printf("  IPC_STAT = -1 %s\n", errname((int)-r));
	else
		show_ds(&d);
}

static void shm_family(void)
{
	CASE("shm_raw");
	int id = RAW(shmget, IPC_PRIVATE, 2 * PAGE, IPC_CREAT | 0600, 0, 0);
	long at = raw(SYS_shmat, id, 0, 0, 0, 0);
	show_at("shmat(id, 0, 0)", (void *)at, NULL, at < 0 ? (int)-at : 0);
	if (at < 0 && at > -4096)
		return;
	char *mem = (char *)at;
	strcpy(mem, "written through a raw shmat");
	/* The same segment through libc's shmat: one object whichever way it was reached. */
	char *ro = AT(shmat(id, NULL, SHM_RDONLY), NULL);
	if (ro != (void *)-1) {
		printf("  libc's view reads: %s\n", ro);
		shmdt(ro);
	}
	raw_stat(id);

	CASE("shm_raw_fork_inherits_the_attachment");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		/* Both processes hold the raw attachment now. */
		struct shmid_ds d;
		long r = raw(SYS_shmctl, id, IPC_STAT, (long)&d, 0, 0);
		printf("  child: IPC_STAT = %ld nattch=%lu reads: %s\n", r, (unsigned long)d.shm_nattch, mem);
		printf("  child: shmdt = %ld\n", raw(SYS_shmdt, (long)mem, 0, 0, 0, 0));
		_exit(0);
	}
	g_child = pid;
	int st = wait_child(pid);
	if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		show_status("child", st);
	raw_stat(id);

	CASE("shm_raw_errors");
	RAW(shmdt, (long)mem, 0, 0, 0, 0);
	RAW(shmdt, (long)mem, 0, 0, 0, 0);
	RAW(shmdt, (long)mem + 1, 0, 0, 0, 0);
	RAW(shmat, -1, 0, 0, 0, 0);
	RAW(shmat, id, 1, 0, 0, 0);
	RAW(shmget, IPC_PRIVATE, 0, IPC_CREAT | 0600, 0, 0);
	RAW(shmget, 0x10990001, PAGE, 0600, 0, 0);
	RAW(shmget, IPC_PRIVATE, 2 << 20, IPC_CREAT | SHM_HUGETLB | (21 << 26) | 0600, 0, 0);
	RAW(shmctl, id, IPC_STAT, 1, 0, 0);
	RAW(shmctl, id, 99, 0, 0, 0);
	RAW(shmctl, id, IPC_RMID, 0, 0, 0);
	RAW(shmctl, id, IPC_STAT, 0, 0, 0);
}

static void sem_family(void)
{
	CASE("sem_raw");
	int id = RAW(semget, IPC_PRIVATE, 2, IPC_CREAT | 0600, 0, 0);
	struct sembuf ops[2] = { { 0, 3, 0 }, { 1, 1, 0 } };
	RAW(semop, id, (long)ops, 2, 0, 0);
	struct sembuf down = { 0, -5, IPC_NOWAIT };
	RAW(semop, id, (long)&down, 1, 0, 0);
	struct timespec ts = { 0, 1000000 };
	struct sembuf wait1 = { 1, -2, 0 };
	RAW(semtimedop, id, (long)&wait1, 1, (long)&ts, 0);
	RAW(semctl, id, 0, GETVAL, 0, 0);
	RAW(semctl, id, 1, GETVAL, 0, 0);
	RAW(semctl, id, 0, SETVAL, 7, 0);
	RAW(semctl, id, 0, GETVAL, 0, 0);
	RAW(semctl, id, 0, IPC_RMID, 0, 0);
	RAW(semop, id, (long)ops, 1, 0, 0);
}

static void msg_family(void)
{
	CASE("msg_raw");
	int id = RAW(msgget, IPC_PRIVATE, IPC_CREAT | 0600, 0, 0, 0);
	struct {
		long type;
		char text[16];
	} m = { 5, "raw message" }, got = { 0, "" };
	RAW(msgsnd, id, (long)&m, sizeof m.text, 0, 0);
	RAW(msgrcv, id, (long)&got, sizeof got.text, 0, IPC_NOWAIT);
	printf("  received type %ld: %s\n", got.type, got.text);
	RAW(msgrcv, id, (long)&got, sizeof got.text, 0, IPC_NOWAIT);
	struct msqid_ds ds;
	long r = raw(SYS_msgctl, id, IPC_STAT, (long)&ds, 0, 0);
	printf("msgctl(IPC_STAT) = %ld qnum=%lu lspid=%s lrpid=%s\n", r, (unsigned long)ds.msg_qnum,
	       pidrel(ds.msg_lspid), pidrel(ds.msg_lrpid));
	RAW(msgctl, id, IPC_RMID, 0, 0, 0);
	RAW(msgsnd, id, (long)&m, sizeof m.text, 0, 0);
}

static void fd_families(void)
{
	CASE("pipe_raw");
	int p[2];
	RAW(pipe2, (long)p, 0, 0, 0, 0);
	RAW(write, p[1], (long)"through the region", 18, 0, 0);
	RAW(ioctl, p[0], FIONREAD, (long)&(int){ 0 }, 0, 0);
	struct pollfd pf = { p[0], POLLIN, 0 };
	RAW(poll, (long)&pf, 1, 0, 0, 0);
	printf("  revents=%#x\n", pf.revents);
	char buf[32] = "";
	RAW(read, p[0], (long)buf, sizeof buf, 0, 0);
	printf("  read: %s\n", buf);

	CASE("epoll_raw");
	int ep = RAW(epoll_create1, EPOLL_CLOEXEC, 0, 0, 0, 0);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 42 }, out[2];
	RAW(epoll_ctl, ep, EPOLL_CTL_ADD, p[0], (long)&ev, 0);
	RAW(epoll_wait, ep, (long)out, 2, 0, 0);
	RAW(write, p[1], (long)"x", 1, 0, 0);
	long n = RAW(epoll_wait, ep, (long)out, 2, 1000, 0);
	if (n == 1)
		printf("  event %#x data %llu\n", out[0].events, (unsigned long long)out[0].data.u64);
	RAW(read, p[0], (long)buf, sizeof buf, 0, 0);
	RAW(close, p[1], 0, 0, 0, 0);
	n = RAW(epoll_wait, ep, (long)out, 2, 1000, 0);
	if (n == 1)
		printf("  event %#x\n", out[0].events);
	RAW(read, p[0], (long)buf, sizeof buf, 0, 0);
	RAW(close, p[0], 0, 0, 0, 0);
	RAW(close, ep, 0, 0, 0, 0);

	CASE("socketpair_raw");
	int sv[2];
	RAW(socketpair, AF_UNIX, SOCK_STREAM, 0, (long)sv, 0);
	RAW(sendto, sv[0], (long)"over a socket", 13, 0, 0);
	memset(buf, 0, sizeof buf);
	RAW(recvfrom, sv[1], (long)buf, sizeof buf, MSG_DONTWAIT, 0);
	printf("  received: %s\n", buf);
	RAW(shutdown, sv[0], SHUT_WR, 0, 0, 0);
	RAW(recvfrom, sv[1], (long)buf, sizeof buf, 0, 0);
	RAW(close, sv[0], 0, 0, 0, 0);
	RAW(close, sv[1], 0, 0, 0, 0);
}

int main(void)
{
	setup();
	shm_family();
	sem_family();
	msg_family();
	fd_families();
	return 0;
}
