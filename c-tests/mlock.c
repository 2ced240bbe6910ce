/* mlockall and munlockall: their errors, RLIMIT_MEMLOCK as root and as nobody, MCL_FUTURE
 * and MCL_ONFAULT, and a segment attached under MCL_FUTURE. Under the shim the region (a
 * sparse mapping of 139 GiB) must never be locked nor counted: the process's resident and
 * locked sizes stay those of the program itself, printed as relations to 64 MiB. Each case
 * runs in a child of its own (memory locks are not inherited by fork). */
#include "common.h"
#include <sys/sem.h>

#define MIB (1UL << 20)

/* VmRSS or VmLck of this process, in bytes. */
static unsigned long status_kib(const char *field)
{
	char line[256];
	unsigned long v = 0;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		die("status");
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, field, strlen(field)))
			v = strtoul(line + strlen(field) + 1, NULL, 10);
	fclose(f);
	return v * 1024;
}

static void show_mem(const char *when)
{
	unsigned long rss = status_kib("VmRSS"), lck = status_kib("VmLck");
	printf("  %s: locked %s, resident under 64 MiB: %s, locked under 64 MiB: %s\n", when,
	       lck ? "yes" : "no", rss < 64 * MIB ? "yes" : "no", lck < 64 * MIB ? "yes" : "no");
}

static void memlock_limit(rlim_t bytes)
{
	struct rlimit rl = { bytes, bytes };
	if (setrlimit(RLIMIT_MEMLOCK, &rl))
		die("setrlimit");
}

/* Some IPC after the lock, so that what it touches is locked too. */
static void use_ipc(void)
{
	int id = semget(IPC_PRIVATE, 1, 0600);
	struct sembuf op = { 0, 1, SEM_UNDO };
	int p[2];
	char c;
	if (id < 0 || semop(id, &op, 1) || pipe(p) || write(p[1], "x", 1) != 1 || read(p[0], &c, 1) != 1)
		die("ipc");
	close(p[0]);
	close(p[1]);
	semctl(id, 0, IPC_RMID);
}

static void flags(void *arg)
{
	(void)arg;
	SHOW(mlockall(0));
	SHOW(mlockall(MCL_ONFAULT));
	SHOW(mlockall(0x100));
	SHOW(mlockall(MCL_CURRENT | 0x100));
	SHOW(munlockall());
	show_mem("nothing locked");
}

static void current_future(void *arg)
{
	(void)arg;
	SHOW(mlockall(MCL_CURRENT | MCL_FUTURE));
	show_mem("after mlockall");
	use_ipc();
	char *p = mmap(NULL, 4 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned long before = status_kib("VmRSS");
	printf("  later mapping faulted in: %s\n", p != MAP_FAILED && status_kib("VmRSS") >= before ? "yes" : "no");
	show_mem("after IPC and a mapping");
	SHOW(munlockall());
	printf("  locked after munlockall: %s\n", status_kib("VmLck") ? "yes" : "no");
	SHOW(mlockall(MCL_CURRENT));
	show_mem("MCL_CURRENT again");
	SHOW(munlockall());
}

static void onfault(void *arg)
{
	(void)arg;
	SHOW(mlockall(MCL_CURRENT | MCL_ONFAULT));
	show_mem("on fault");
	SHOW(mlockall(MCL_FUTURE | MCL_ONFAULT));
	char *p = mmap(NULL, 8 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("  mapping made: %s\n", p != MAP_FAILED ? "yes" : "no");
	show_mem("a mapping locked on fault, not touched");
	SHOW(munlockall());
}

static void segment(void *arg)
{
	int onf = *(int *)arg;
	SHOW(mlockall(MCL_FUTURE | onf));
	int id = shmget(IPC_PRIVATE, 8 * MIB, 0600);
	unsigned long lck = status_kib("VmLck"), rss = status_kib("VmRSS");
	char *p = AT(shmat(id, NULL, 0), NULL);
	printf("  segment counted as locked: %s\n", status_kib("VmLck") >= lck + 8 * MIB ? "yes" : "no");
	printf("  segment resident without a touch: %s\n", status_kib("VmRSS") >= rss + 8 * MIB ? "yes" : "no");
	show_mem("segment attached");
	if (p != (void *)-1)
		SHOW(shmdt(p));
	shmctl(id, IPC_RMID, NULL);
	SHOW(munlockall());
}

/* RLIMIT_MEMLOCK is 8 MiB (set by root before the switch, the usual default, and more than
 * this program maps); lowered as we go. */
static void nobody_limits(void *arg)
{
	(void)arg;
	SHOW(mlockall(MCL_CURRENT));
	show_mem("as nobody, 8 MiB allowed");
	use_ipc();
	SHOW(munlockall());
	memlock_limit(64 * 1024);
	SHOW(mlockall(MCL_CURRENT));
	SHOW(mlockall(MCL_CURRENT | MCL_FUTURE));
	show_mem("as nobody, 64 KiB allowed");
	SHOW(mlockall(MCL_FUTURE));
	errno = 0;
	void *p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("mmap of 1 MiB beyond the limit = %s\n", p == MAP_FAILED ? errname(errno) : "mapped");
	int id = shmget(IPC_PRIVATE, MIB, 0600);
	AT(shmat(id, NULL, 0), NULL);
	shmctl(id, IPC_RMID, NULL);
	SHOW(munlockall());
	p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("mmap after munlockall = %s\n", p == MAP_FAILED ? errname(errno) : "mapped");
	memlock_limit(0);
	SHOW(mlockall(MCL_CURRENT));
	SHOW(mlockall(MCL_FUTURE));
}

int main(void)
{
	setup();
	static int zero = 0, onf = MCL_ONFAULT;

	CASE("mlockall_flags");
	in_child(0, flags, NULL);

	CASE("mlockall_current_future");
	in_child(0, current_future, NULL);

	CASE("mlockall_onfault");
	in_child(0, onfault, NULL);

	CASE("mlockall_future_segment");
	in_child(0, segment, &zero);

	CASE("mlockall_future_onfault_segment");
	in_child(0, segment, &onf);

	CASE("mlockall_nobody_limits");
	memlock_limit(8 * MIB);
	in_child(NOBODY, nobody_limits, NULL);
	return 0;
}
