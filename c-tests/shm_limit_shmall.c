/* shmget against a lowered kernel.shmall (in pages), set by the runner before exec. */
// sysctl: shmall=4
#include "common.h"

int main(void)
{
	setup();
	int id, id2;

	CASE("get_enospc_shmall");
	id = SHOW(shmget(IPC_PRIVATE, 4097, 0600));
	SHOW(shmget(IPC_PRIVATE, 3 * 4096, 0600));
	id2 = SHOW(shmget(IPC_PRIVATE, 8192, 0600));
	SHOW(shmget(IPC_PRIVATE, 1, 0600));
	SHOW(shmget(0x10010008, 1, IPC_CREAT | 0600));
	SHOW(shmctl(id2, IPC_RMID, NULL));
	id2 = SHOW(shmget(IPC_PRIVATE, 1, 0600));
	SHOW(shmctl(id, IPC_RMID, NULL));
	SHOW(shmctl(id2, IPC_RMID, NULL));
	return 0;
}
