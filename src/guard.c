/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  The schema guard: the engine reaches its own objects only through the
 *	  extension's own schema.
 *
 * The engine's statements run with the extension owner's rights and name
 * its tables as text ("state_msg.clients").  Such a name is resolved again
 * whenever a statement is planned (a kept plan too, once invalidated), so a
 * schema renamed, and a look-alike created under the old name, would
 * redirect them: whatever the look-alike holds (a trigger, a rule, a
 * function) would run with the owner's rights.  So before any such
 * statement runs, the guard checks, by OID, that
 *
 *	(a) the name "state_msg" resolves to the extension's own schema, and
 *	(b) that schema is owned by the extension's owner or a superuser, so
 *		that no one else can rename it, or create in it, meanwhile;
 *
 * and fails closed otherwise.  Every entry point that runs owner-rights
 * statements calls sm_guard_schema() first.
 *
 * Cost: one index probe of pg_extension per transaction (about 2 us) and two
 * syscache lookups per call (about 0.05 us), measured on the development
 * machine; a one-message ingest() costs a few hundred microseconds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "state_msg.h"

#define SM_NAME "state_msg"		/* the extension's name and its schema's */

/* The release installed in this database, as last read */
static char cached_version[NAMEDATALEN];

/*
 * The extension's schema and owner, read from pg_extension (which has no
 * syscache: an index probe, most of the guard's cost) once per transaction,
 * or again when fresh is asked for, with its installed release.  Neither
 * changes while the extension exists (it is not relocatable); a drop and
 * create within one transaction is caught by the caller asking again before
 * it fails.
 */
static void
extension_schema(bool fresh, Oid *schema, Oid *owner)
{
	static LocalTransactionId cached_lxid = InvalidLocalTransactionId;
	static Oid	cached_schema;
	static Oid	cached_owner;
	bool		isnull;
	Datum		version;
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;

	if (!fresh && cached_lxid == MyProc->lxid &&
		cached_lxid != InvalidLocalTransactionId)
	{
		*schema = cached_schema;
		*owner = cached_owner;
		return;
	}

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum(SM_NAME));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"%s\" is not installed in this database",
						SM_NAME)));
	*schema = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
	*owner = ((Form_pg_extension) GETSTRUCT(tuple))->extowner;
	version = heap_getattr(tuple, Anum_pg_extension_extversion,
						   RelationGetDescr(rel), &isnull);
	if (isnull)
		cached_version[0] = '\0';
	else
		text_to_cstring_buffer(DatumGetTextPP(version), cached_version,
							   sizeof(cached_version));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	cached_lxid = MyProc->lxid;
	cached_schema = *schema;
	cached_owner = *owner;
}

/* The owner of a schema, which must exist */
static Oid
schema_owner(Oid schema)
{
	HeapTuple	tuple = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(schema));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for namespace %u", schema);
	owner = ((Form_pg_namespace) GETSTRUCT(tuple))->nspowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*
 * Fail closed unless the name "state_msg" resolves to the extension's own
 * schema, owned by the extension's owner or a superuser.
 */
void
sm_guard_schema(void)
{
	Oid			ext_schema;
	Oid			ext_owner;
	Oid			named;
	Oid			owner;

	extension_schema(false, &ext_schema, &ext_owner);
	named = get_namespace_oid(SM_NAME, true);
	owner = OidIsValid(named) ? schema_owner(named) : InvalidOid;
	if (named != ext_schema || (owner != ext_owner && !superuser_arg(owner)))
		extension_schema(true, &ext_schema, &ext_owner);	/* ask again */

	if (named != ext_schema)
	{
		char	   *real_name = get_namespace_name(ext_schema);

		if (!OidIsValid(named))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the schema of extension \"%s\" is no longer named \"%s\"",
							SM_NAME, SM_NAME),
					 errdetail("It is named \"%s\"; the engine names its objects through \"%s\" and refuses to run.",
							   real_name ? real_name : "?", SM_NAME),
					 errhint("Rename it back: ALTER SCHEMA %s RENAME TO %s;",
							 real_name ? quote_identifier(real_name) : "...",
							 SM_NAME)));
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("schema \"%s\" is not the schema of extension \"%s\"",
						SM_NAME, SM_NAME),
				 errdetail("The extension's objects are in schema \"%s\"; schema \"%s\" is another one, owned by role \"%s\", and statements that run with the extension owner's rights must not reach it.",
						   real_name ? real_name : "?", SM_NAME,
						   GetUserNameFromId(owner, true)),
				 errhint("Inspect and drop the other schema, then rename the extension's schema back to \"%s\".",
						 SM_NAME)));
	}

	if (owner != ext_owner && !superuser_arg(owner))
	{
		char	   *ext_owner_name = GetUserNameFromId(ext_owner, true);

		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("schema \"%s\" is owned by role \"%s\", which is neither the owner of extension \"%s\" nor a superuser",
						SM_NAME, GetUserNameFromId(owner, true), SM_NAME),
				 errdetail("The schema's owner could rename it and redirect statements that run with the extension owner's rights."),
				 errhint("Make a superuser own it: ALTER SCHEMA %s OWNER TO %s;",
						 SM_NAME,
						 ext_owner_name ? quote_identifier(ext_owner_name) : "...")));
	}
}

/*
 * Refuse to work on the objects of another release of the extension: after
 * "make install" only the newest library exists, and it reads and writes
 * the tables as the newest release defines them.  A database still on an
 * older release is told to update.  Reads the row the guard has read in
 * this transaction, so it costs nothing more.
 */
void
sm_require_current_release(void)
{
	Oid			schema;
	Oid			owner;

	extension_schema(false, &schema, &owner);
	if (strcmp(cached_version, SM_RELEASE) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension state_msg is at version %s, but its library is release %s",
						cached_version[0] ? cached_version : "(unknown)",
						SM_RELEASE),
				 errhint("Run ALTER EXTENSION state_msg UPDATE.")));
}
