/* IPC_INFO reports the kernel.shm* limits the runner set before exec. */
// sysctl: shmmax=1000000 shmmni=100 shmall=5000
#include "common.h"

static void show_info(void)
{
	struct shminfo si;
	SHOW(shmctl(0, IPC_INFO, (struct shmid_ds *)&si));
	printf("  shmmax=%lu shmmin=%lu shmmni=%lu shmseg=%lu shmall=%lu\n",
	       si.shmmax, si.shmmin, si.shmmni, si.shmseg, si.shmall);
}

int main(void)
{
	setup();

	CASE("ctl_ipc_info_sysctl");
	show_info();
	int id = SHOW(shmget(0x10030006, 4096, IPC_CREAT | 0600));
	int id2 = SHOW(shmget(IPC_PRIVATE, 4096, 0600));
	show_info();
	SHOW(shmctl(id, IPC_RMID, NULL));
	SHOW(shmctl(id2, IPC_RMID, NULL));
	return 0;
}
