/*
 * arena.h
 *	  The allocator the fuzz harness and the unit test hand to
 *	  sm_report_parse: every allocation a malloc of its own (so that
 *	  AddressSanitizer sees each bound), all freed at once like a reset
 *	  memory context, and a cap on the total after which it returns NULL
 *	  (so the parser's out-of-memory paths run too).
 */
#ifndef SM_FUZZ_ARENA_H
#define SM_FUZZ_ARENA_H

#include <stdlib.h>

typedef struct ArenaBlock
{
	struct ArenaBlock *next;
	/* the caller's bytes follow, maximally aligned */
	long double align[];
} ArenaBlock;

typedef struct Arena
{
	ArenaBlock *blocks;
	size_t		total;			/* bytes handed out */
	size_t		cap;			/* NULL beyond this total */
	size_t		peak;			/* largest total seen */
	long		nallocs;
} Arena;

/* An SmReportAlloc: NULL once the cap would be exceeded */
static inline void *
arena_alloc(void *arg, size_t size)
{
	Arena	   *a = arg;
	ArenaBlock *b;

	if (size > a->cap || a->total > a->cap - size)
		return NULL;
	b = malloc(sizeof(ArenaBlock) + size);
	if (b == NULL)
		return NULL;
	b->next = a->blocks;
	a->blocks = b;
	a->total += size;
	a->nallocs++;
	if (a->total > a->peak)
		a->peak = a->total;
	return b->align;
}

/* Frees everything, as resetting a memory context does */
static inline void
arena_reset(Arena *a)
{
	while (a->blocks)
	{
		ArenaBlock *next = a->blocks->next;

		free(a->blocks);
		a->blocks = next;
	}
	a->total = 0;
	a->nallocs = 0;
}

#endif							/* SM_FUZZ_ARENA_H */
