/* semctl: GETVAL/SETVAL, GETALL/SETALL, GETPID/GETNCNT/GETZCNT, IPC_STAT,
 * IPC_SET, IPC_RMID, IPC_INFO, SEM_INFO, SEM_STAT(_ANY), bad commands, bad
 * pointers, ranges, permissions and which error wins. */
#include "common.h"

static int g_id;

static void show_info(const char *what, int r, const struct seminfo *s)
{
	printf("  %s returned %d: semmap=%d semmni=%d semmns=%d semmnu=%d semmsl=%d "
	       "semopm=%d semume=%d semusz=%d semvmx=%d semaem=%d\n",
	       what, r, s->semmap, s->semmni, s->semmns, s->semmnu, s->semmsl, s->semopm,
	       s->semume, s->semusz, s->semvmx, s->semaem);
}

static void info(void)
{
	struct seminfo si;
	memset(&si, 0x55, sizeof si);
	int r = semctl(0, 0, IPC_INFO, &si);
	show_info("IPC_INFO", r, &si);
	memset(&si, 0x55, sizeof si);
	r = semctl(0, 0, SEM_INFO, &si);
	show_info("SEM_INFO", r, &si);
}

static void nobody_ctl(void *arg)
{
	int id = g_id;
	unsigned short v[3] = { 1, 1, 1 };
	struct semid_ds ds;
	(void)arg;
	SHOW(semctl(id, 0, GETVAL));
	SHOW(semctl(id, 0, GETPID));
	SHOW(semctl(id, 0, GETNCNT));
	SHOW(semctl(id, 0, GETZCNT));
	SHOW(semctl(id, 0, GETALL, v));
	SHOW(semctl(id, 0, IPC_STAT, &ds));
	SHOW(semctl(id, 0, SETVAL, 1));
	SHOW(semctl(id, 0, SETALL, v));
	SHOW(semctl(id, 0, IPC_SET, &ds));
	SHOW(semctl(id, 0, IPC_RMID));
	SHOW(semctl(id & 0x7fff, 0, SEM_STAT, &ds));
	SHOW(semctl(id & 0x7fff, 0, SEM_STAT_ANY, &ds) == id);
	printf(" which error wins:\n");
	SHOW(semctl(id, 99, GETVAL));
	SHOW(semctl(id, 99, SETVAL, 1));
	SHOW(semctl(id, 0, SETVAL, -1));
	SHOW(syscall(SYS_semctl, id, 0, GETALL, NULL));
	SHOW(syscall(SYS_semctl, id, 0, IPC_SET, NULL));
	SHOW(syscall(SYS_semctl, id, 0, IPC_STAT, NULL));
}

static void nobody_ctl_ro(void *arg)
{
	int id = g_id;
	unsigned short v[3] = { 1, 1, 1 };
	struct semid_ds ds;
	(void)arg;
	printf(" mode 0604:\n");
	SHOW(semctl(id, 0, GETVAL));
	SHOW(semctl(id, 0, GETALL, v));
	SHOW(semctl(id, 0, IPC_STAT, &ds));
	SHOW(semctl(id, 0, SETVAL, 1));
	SHOW(semctl(id, 0, SETALL, v));
	SHOW(semctl(id, 0, IPC_SET, &ds));
}

static void nobody_ctl_wo(void *arg)
{
	int id = g_id;
	unsigned short v[3] = { 2, 2, 2 };
	struct semid_ds ds;
	(void)arg;
	printf(" mode 0602:\n");
	SHOW(semctl(id, 0, GETVAL));
	SHOW(semctl(id, 0, IPC_STAT, &ds));
	SHOW(semctl(id, 0, SETVAL, 1));
	SHOW(semctl(id, 0, SETALL, v));
	SHOW(semctl(id, 0, GETZCNT));
}

static void nobody_owner(void *arg)
{
	struct semid_ds ds;
	(void)arg;
	SHOW(semctl(g_id, 0, IPC_STAT, &ds));
	ds.sem_perm.mode = 0;
	SHOW(semctl(g_id, 0, IPC_SET, &ds));
	SHOW(semctl(g_id, 0, IPC_STAT, &ds));
	SHOW(semctl(g_id, 0, GETVAL));
	ds.sem_perm.uid = 0;
	ds.sem_perm.mode = 0666;
	SHOW(semctl(g_id, 0, IPC_SET, &ds));
	SHOW(semctl(g_id, 0, IPC_STAT, &ds));
	SHOW(semctl(g_id, 0, IPC_SET, &ds));
}

static void nobody_creator(void *arg)
{
	(void)arg;
	struct semid_ds ds;
	memset(&ds, 0, sizeof ds);
	if (SHOW(semctl(g_id, 0, IPC_STAT, &ds)) == 0)
		show_semds(&ds);
	SHOW(semctl(g_id, 0, IPC_SET, &ds));
	SHOW(semctl(g_id, 0, IPC_RMID));
}

static void child_setall(void *arg)
{
	(void)arg;
	SHOW(semctl(g_id, 0, SETALL, (unsigned short[]){ 4, 5, 6 }));
}

int main(void)
{
	setup();
	alarm(20);
	int id, id2, r;
	struct semid_ds ds;
	time_t ot, ct, ot2, ct2;

	CASE("ctl_info_empty");
	info();
	SHOW(semctl(-1, 0, IPC_INFO, &(struct seminfo){ 0 }));
	SHOW(semctl(INT_MAX, 0, IPC_INFO, &(struct seminfo){ 0 }));
	SHOW(syscall(SYS_semctl, 0, 0, IPC_INFO, NULL));
	SHOW(syscall(SYS_semctl, 0, 0, SEM_INFO, (void *)8));

	CASE("ctl_setval_getval");
	id = g_id = SHOW(semget(IPC_PRIVATE, 3, 0600));
	SHOW(semctl(id, 1, SETVAL, 7));
	SHOW(semctl(id, 1, GETVAL));
	show_sem(id, 1);
	show_sem(id, 0);
	SHOW(semctl(id, 2, SETVAL, 32767));
	SHOW(semctl(id, 2, SETVAL, 32768));
	SHOW(semctl(id, 2, SETVAL, -1));
	SHOW(semctl(id, 2, SETVAL, INT_MIN));
	SHOW(semctl(id, 0, SETVAL, 0));
	show_vals(id);
	show_sem(id, 0);

	CASE("ctl_semnum_range");
	SHOW(semctl(id, 3, GETVAL));
	SHOW(semctl(id, -1, GETVAL));
	SHOW(semctl(id, 3, SETVAL, 1));
	SHOW(semctl(id, -1, SETVAL, 1));
	SHOW(semctl(id, 3, GETPID));
	SHOW(semctl(id, 3, GETNCNT));
	SHOW(semctl(id, 3, GETZCNT));
	SHOW(semctl(id, 65536, GETZCNT));
	printf(" semnum is ignored by the whole-array commands:\n");
	SHOW(semctl(id, 99, GETALL, (unsigned short[3]){ 0 }));
	SHOW(semctl(id, -5, IPC_STAT, &ds));

	CASE("ctl_getall_setall");
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 1, 2, 3 }));
	show_vals(id);
	show_sem(id, 2);
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 9, 40000, 9 }));
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 9, 9, 32768 }));
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 65535, 0, 0 }));
	show_vals(id);
	in_child(0, child_setall, NULL);
	show_vals(id);
	show_sem(id, 0);
	show_sem(id, 2);
	SHOW(semctl(id, 0, SETALL, (unsigned short[]){ 32767, 0, 32767 }));
	show_vals(id);

	CASE("ctl_range_before_id");
	SHOW(semctl(12345, 0, SETVAL, -1));
	SHOW(semctl(12345, 0, SETVAL, 40000));
	SHOW(semctl(-1, 0, SETVAL, -1));
	SHOW(semctl(12345, 0, SETVAL, 1));
	SHOW(semctl(id, 7, SETVAL, 40000));
	SHOW(semctl(12345, 0, SETALL, (unsigned short[]){ 40000 }));

	CASE("ctl_bad_pointers");
	SHOW(syscall(SYS_semctl, id, 0, GETALL, NULL));
	SHOW(syscall(SYS_semctl, id, 0, SETALL, NULL));
	SHOW(syscall(SYS_semctl, id, 0, IPC_STAT, NULL));
	SHOW(syscall(SYS_semctl, id, 0, IPC_SET, NULL));
	SHOW(syscall(SYS_semctl, 12345, 0, IPC_SET, NULL));
	SHOW(syscall(SYS_semctl, 12345, 0, IPC_STAT, NULL));
	SHOW(syscall(SYS_semctl, 12345, 0, GETALL, NULL));
	SHOW(syscall(SYS_semctl, id & 0x7fff, 0, SEM_STAT, NULL));
	SHOW(syscall(SYS_semctl, id & 0x7fff, 0, SEM_STAT_ANY, (void *)8));
	{
		unsigned short *e = (unsigned short *)io_edge(2 * sizeof(unsigned short));
		e[0] = 11;
		e[1] = 12;
		SHOW(semctl(id, 0, SETALL, e));
		SHOW(semctl(id, 0, GETALL, e));
		e = (unsigned short *)io_edge(3 * sizeof(unsigned short));
		e[0] = e[1] = e[2] = 8;
		SHOW(semctl(id, 0, SETALL, e));
		e[0] = e[1] = e[2] = 0;
		SHOW(semctl(id, 0, GETALL, e));
		printf("  got %u %u %u\n", e[0], e[1], e[2]);
		struct semid_ds *d = (struct semid_ds *)io_edge(sizeof(struct semid_ds) - 8);
		SHOW(semctl(id, 0, IPC_SET, d));
		SHOW(semctl(id, 0, IPC_STAT, d));
	}
	show_vals(id);
	sem_stat_show(id);

	CASE("ctl_ipc_stat");
	id2 = SHOW(semget(0x5e6e1001, 4, IPC_CREAT | 0640));
	sem_stat_show(id2);
	OPS(id2, { 3, 1, 0 });
	sem_stat_show(id2);
	memset(&ds, 0x55, sizeof ds);
	SHOW(semctl(id2, 0, IPC_STAT, &ds));
	printf("  nsems=%lu\n", (unsigned long)ds.sem_nsems);
	SHOW(semctl(id2 + 32768, 0, IPC_STAT, &ds));
	SHOW(semctl(12345, 0, IPC_STAT, &ds));

	CASE("ctl_ipc_set");
	memset(&ds, 0, sizeof ds);
	SHOW(semctl(id2, 0, IPC_STAT, &ds));
	sem_times(id2, &ot, &ct);
	next_second();
	ds.sem_perm.uid = NOBODY;
	ds.sem_perm.gid = 1234;
	ds.sem_perm.mode = 07177;
	ds.sem_perm.cuid = 42;
	ds.sem_perm.__key = 77;
	ds.sem_nsems = 99;
	SHOW(semctl(id2, 0, IPC_SET, &ds));
	sem_stat_show(id2);
	sem_times(id2, &ot2, &ct2);
	printf("  ctime %s, otime %s\n", ct2 > ct ? "later" : "not later",
	       ot2 == ot ? "unchanged" : "changed");
	ds.sem_perm.uid = (uid_t)-1;
	SHOW(semctl(id2, 0, IPC_SET, &ds));
	ds.sem_perm.uid = 0;
	ds.sem_perm.gid = (gid_t)-1;
	SHOW(semctl(id2, 0, IPC_SET, &ds));
	sem_stat_show(id2);
	ds.sem_perm.gid = 0;
	ds.sem_perm.mode = 0600;
	SHOW(semctl(id2, 0, IPC_SET, &ds));
	sem_stat_show(id2);

	CASE("ctl_ipc_set_owner_nobody");
	ds.sem_perm.uid = NOBODY;
	ds.sem_perm.mode = 0600;
	SHOW(semctl(id2, 0, IPC_SET, &ds));
	g_id = id2;
	in_child(NOBODY, nobody_owner, NULL);
	sem_stat_show(id2);

	CASE("ctl_perm_nobody");
	g_id = id;
	in_child(NOBODY, nobody_ctl, NULL);
	SHOW(semctl(id, 0, IPC_SET, &(struct semid_ds){ .sem_perm = { .mode = 0604 } }));
	in_child(NOBODY, nobody_ctl_ro, NULL);
	SHOW(semctl(id, 0, IPC_SET, &(struct semid_ds){ .sem_perm = { .mode = 0602 } }));
	in_child(NOBODY, nobody_ctl_wo, NULL);
	show_vals(id);
	show_sem(id, 0);
	SHOW(semctl(id, 0, IPC_SET, &(struct semid_ds){ .sem_perm = { .mode = 0600 } }));

	CASE("ctl_rmid_creator");
	/* The creator may remove and change a set it no longer owns. */
	{
		pid_t pid = io_fork();
		if (pid == 0) {
			become(NOBODY);
			SHOW(semget(0x5e6e1003, 1, IPC_CREAT | 0600));
			_exit(0);
		}
		wait_child(pid);
	}
	g_id = SHOW(semget(0x5e6e1003, 0, 0));
	struct semid_ds own = { .sem_perm = { .uid = 0, .gid = 0, .mode = 0600 } };
	SHOW(semctl(g_id, 0, IPC_SET, &own));
	sem_stat_show(g_id);
	in_child(NOBODY, nobody_creator, NULL);
	SHOW(semget(0x5e6e1003, 0, 0));

	CASE("ctl_rmid");
	SHOW(semctl(id2, 0, IPC_RMID));
	SHOW(semctl(id2, 0, IPC_RMID));
	SHOW(semctl(id2, 0, GETVAL));
	SHOW(semctl(id2, 0, SETVAL, 1));
	SHOW(semctl(id2, 0, IPC_STAT, &ds));
	SHOW(semctl(id2, 0, GETALL, (unsigned short[4]){ 0 }));
	SHOW(semget(0x5e6e1001, 0, 0));
	SHOW(semctl(-1, 0, IPC_RMID));
	SHOW(semctl(12345, 0, IPC_RMID));
	SHOW(semctl(id + 32768, 0, IPC_RMID));

	CASE("ctl_sem_stat");
	id2 = SHOW(semget(IPC_PRIVATE, 2, 0640));
	SHOW(semctl(id2 & 0x7fff, 0, SEM_STAT, &ds) == id2);
	show_semds(&ds);
	SHOW(semctl(id2 & 0x7fff, 0, SEM_STAT_ANY, &ds) == id2);
	SHOW(semctl(id2 + 32768, 0, SEM_STAT, &ds) == id2);
	SHOW(semctl((id2 & 0x7fff) + 1, 0, SEM_STAT, &ds));
	SHOW(semctl(32767, 0, SEM_STAT_ANY, &ds));
	SHOW(semctl(-1, 0, SEM_STAT, &ds));
	r = semctl(id & 0x7fff, 0, SEM_STAT, &ds);
	printf("  SEM_STAT(first index) %s id\n", r == id ? "==" : "!=");

	CASE("ctl_info_in_use");
	info();

	CASE("ctl_bad_cmd");
	SHOW(semctl(id, 0, 99));
	SHOW(semctl(id, 0, -1));
	SHOW(semctl(id, 0, 21));
	SHOW(semctl(id, 0, 4));
	SHOW(semctl(id, 0, 10));
	SHOW(semctl(id, 0, GETVAL | 0x100));
	SHOW(semctl(12345, 0, 99));
	SHOW(semctl(-1, 0, 99));
	SHOW(semctl(-1, 0, GETVAL));
	SHOW(semctl(INT_MIN, 0, IPC_STAT, &ds));

	CASE("ctl_times");
	id2 = SHOW(semget(IPC_PRIVATE, 2, 0600));
	sem_times(id2, &ot, &ct);
	printf("  otime %s\n", ot == 0 ? "0" : "set");
	next_second();
	SHOW(semctl(id2, 0, GETVAL));
	SHOW(semctl(id2, 0, GETALL, (unsigned short[2]){ 0 }));
	SHOW(semctl(id2, 0, IPC_STAT, &ds));
	SHOW(semctl(id2, 0, SETVAL, 40000));
	sem_times(id2, &ot2, &ct2);
	printf("  reads and a failed SETVAL: ctime %s\n", ct2 == ct ? "unchanged" : "changed");
	SHOW(semctl(id2, 1, SETVAL, 3));
	sem_times(id2, &ot2, &ct2);
	printf("  SETVAL: ctime %s, otime %s\n", ct2 > ct ? "later" : "not later",
	       ot2 == 0 ? "0" : "set");
	ct = ct2;
	next_second();
	SHOW(semctl(id2, 0, SETALL, (unsigned short[]){ 1, 1 }));
	sem_times(id2, &ot2, &ct2);
	printf("  SETALL: ctime %s, otime %s\n", ct2 > ct ? "later" : "not later",
	       ot2 == 0 ? "0" : "set");
	SHOW(semctl(id2, 0, IPC_RMID));

	CASE("ctl_all_large_set");
	{
		static unsigned short big[1000], back[1000];
		long sum = 0;
		id2 = SHOW(semget(IPC_PRIVATE, 1000, 0600));
		for (int i = 0; i < 1000; i++)
			big[i] = (unsigned short)(i * 7 % 32768);
		SHOW(semctl(id2, 0, SETALL, big));
		SHOW(semctl(id2, 0, GETALL, back));
		for (int i = 0; i < 1000; i++)
			sum += back[i] == big[i];
		printf("  %ld of 1000 values read back\n", sum);
		SHOW(semctl(id2, 999, GETVAL));
		big[998] = 32768;
		SHOW(semctl(id2, 0, SETALL, big));
		SHOW(semctl(id2, 998, GETVAL));
		SHOW(semctl(id2, 0, GETALL, (void *)8));
		SHOW(semctl(id2, 0, SETALL, (void *)8));
		SHOW(semctl(id2, 0, IPC_RMID));
	}
	return 0;
}
