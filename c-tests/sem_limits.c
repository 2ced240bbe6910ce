/* Limits of /proc/sys/kernel/sem: SEMMSL (raised here so that SEMMNS can
 * be reached without allocating: the SEMMNS check comes before the
 * allocation), SEMMNS, SEMOPM and SEMMNI (the default 32000 sets), as
 * IPC_INFO and SEM_INFO report them. */
// sysctl: sem=2000000000
#include "common.h"

static int g_ids[32001];

static void info(void)
{
	struct seminfo s;
	memset(&s, 0x55, sizeof s);
	int r = semctl(0, 0, IPC_INFO, &s);
	printf("  IPC_INFO returned %d: semmni=%d semmns=%d semmsl=%d semopm=%d semusz=%d "
	       "semaem=%d\n", r, s.semmni, s.semmns, s.semmsl, s.semopm, s.semusz, s.semaem);
	memset(&s, 0x55, sizeof s);
	r = semctl(0, 0, SEM_INFO, &s);
	printf("  SEM_INFO returned %d: semmni=%d semmns=%d semmsl=%d semopm=%d semusz=%d "
	       "semaem=%d\n", r, s.semmni, s.semmns, s.semmsl, s.semopm, s.semusz, s.semaem);
}

int main(void)
{
	setup();
	alarm(20);
	int id, n, e;
	static struct sembuf sb[1000];

	CASE("lim_info");
	info();

	CASE("lim_semmsl");
	SHOW(semget(IPC_PRIVATE, 2000000001, 0600));
	SHOW(semget(IPC_PRIVATE, INT_MAX, 0600));
	SHOW(semget(0x5e6e3001, 2000000001, IPC_CREAT | 0600));
	SHOW(semget(0x5e6e3001, -1, IPC_CREAT | 0600));

	CASE("lim_semmns");
	id = SHOW(semget(0x5e6e3001, 5, IPC_CREAT | 0600));
	SHOW(semget(IPC_PRIVATE, 1024000000 - 4, 0600));
	SHOW(semget(IPC_PRIVATE, 1024000001, 0600));
	SHOW(semget(IPC_PRIVATE, 2000000000, 0600));
	SHOW(semget(0x5e6e3002, 1024000000, IPC_CREAT | 0600));
	printf(" an existing set is found without the SEMMNS check:\n");
	SHOW(semget(0x5e6e3001, 1024000000 - 4, IPC_CREAT | 0600));
	SHOW(semget(0x5e6e3001, 5, IPC_CREAT | 0600) == id);
	info();
	SHOW(semctl(id, 0, IPC_RMID));
	SHOW(semget(IPC_PRIVATE, 1024000001, 0600));
	info();

	CASE("lim_semopm");
	id = SHOW(semget(IPC_PRIVATE, 1, 0600));
	for (int i = 0; i < 1000; i++)
		sb[i] = (struct sembuf){ 0, 1, 0 };
	SHOW(semop(id, sb, 500));
	SHOW(semop(id, sb, 501));
	SHOW(semtimedop(id, sb, 501, NULL));
	SHOW(semtimedop(id, sb, 1000, &(struct timespec){ 0, 0 }));
	SHOW(semctl(id, 0, GETVAL));
	SHOW(semctl(id, 0, IPC_RMID));

	CASE("lim_semmni");
	g_ids[0] = SHOW(semget(0x5e6e3003, 1, IPC_CREAT | 0600));
	for (n = 1; n < 32001; n++)
		if ((g_ids[n] = semget(IPC_PRIVATE, 1, 0600)) < 0)
			break;
	e = errno;
	printf("  created %d sets, then %s\n", n, n < 32001 ? errname(e) : "no error");
	SHOW(semget(IPC_PRIVATE, 1, 0600));
	SHOW(semget(0x5e6e3004, 1, IPC_CREAT | 0600));
	SHOW(semget(0x5e6e3004, 0, IPC_CREAT | 0600));
	SHOW(semget(0x5e6e3004, 2000000001, IPC_CREAT | 0600));
	SHOW(semget(0x5e6e3004, 1, 0));
	SHOW(semget(0x5e6e3003, 1, IPC_CREAT | 0600) == g_ids[0]);
	info();
	SHOW(semctl(g_ids[100], 0, IPC_RMID));
	id = SHOW(semget(IPC_PRIVATE, 1, 0600));
	SHOW(id == g_ids[100]);
	SHOW(semctl(id, 0, SEM_STAT, &(struct semid_ds){ 0 }));
	g_ids[100] = id;
	SHOW(semget(IPC_PRIVATE, 1, 0600));
	for (int i = 0; i < n; i++)
		if (semctl(g_ids[i], 0, IPC_RMID))
			die("IPC_RMID");
	info();
	id = SHOW(semget(IPC_PRIVATE, 1, 0600));
	sem_stat_show(id);
	return 0;
}
