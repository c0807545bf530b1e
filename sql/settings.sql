-- Settings (hardening item 3): the durations that steer the SECURITY
-- DEFINER check cycle (min_missing_message_age, min_resync_period) and the
-- engine clock (clock_offset, max_clock_skew) are exact in any unit, and
-- only a superuser may set them, or a role granted SET ON PARAMETER.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS state_msg;
CREATE EXTENSION state_msg;
DROP ROLE IF EXISTS sm_operator, sm_tuner;
RESET client_min_messages;
SET timezone = 'UTC';

-- Defaults: 2 days and 72 hours (ConfigMgr's), no offset, an hour of skew
SHOW state_msg.min_missing_message_age;
SHOW state_msg.min_resync_period;
SHOW state_msg.clock_offset;
SHOW state_msg.max_clock_skew;
SELECT state_msg.min_missing_message_age(), state_msg.min_resync_period();

-- Any unit, kept exactly, by both settings alike
SET state_msg.min_resync_period = '30s';
SET state_msg.min_missing_message_age = '30s';
SHOW state_msg.min_resync_period;
SELECT state_msg.min_missing_message_age(), state_msg.min_resync_period();
SET state_msg.min_resync_period = '90min';
SET state_msg.min_missing_message_age = '2d';
SHOW state_msg.min_resync_period;
SHOW state_msg.min_missing_message_age;
SELECT state_msg.min_missing_message_age(), state_msg.min_resync_period();
SET state_msg.min_resync_period = '1.5h';
SET state_msg.min_missing_message_age = '1500ms';
SELECT state_msg.min_missing_message_age(), state_msg.min_resync_period();
-- a bare number means minutes, as in 1.0
SET state_msg.min_resync_period = 4320;
SET state_msg.min_missing_message_age = 2.5;
SELECT state_msg.min_missing_message_age(), state_msg.min_resync_period();
-- zero is allowed (no waiting); negative and over a century are not
SET state_msg.min_resync_period = 0;
SELECT state_msg.min_resync_period();
SET state_msg.min_resync_period = '-1s';
SET state_msg.min_missing_message_age = '36525d';
SET state_msg.min_missing_message_age = '36600d';
SET state_msg.clock_offset = '-3d';
SHOW state_msg.clock_offset;
SET state_msg.max_clock_skew = '5min';
SHOW state_msg.max_clock_skew;
RESET state_msg.min_resync_period;
RESET state_msg.min_missing_message_age;
RESET state_msg.clock_offset;
RESET state_msg.max_clock_skew;
SELECT state_msg.min_missing_message_age(), state_msg.min_resync_period();

-- The check cycle uses the value exactly: a range detected at t is due at
-- t + 30s, not a microsecond earlier
SELECT state_msg.ingest('S', s, 500, 'u', 1, '2026-11-10 10:00+00') FROM unnest(ARRAY[1, 3]) s;
SET state_msg.min_missing_message_age = '30s';
SELECT * FROM state_msg.run_resync_check(
	(SELECT detected_at + interval '29.999999 s' FROM state_msg.missing_ranges));
SELECT * FROM state_msg.run_resync_check(
	(SELECT detected_at + interval '30 s' FROM state_msg.missing_ranges));
RESET state_msg.min_missing_message_age;

-- Nobody else may set them, in any way; they may read them
CREATE ROLE sm_operator;
SET ROLE sm_operator;
SET state_msg.min_resync_period = '1h';
SET state_msg.min_missing_message_age = '1h';
SET state_msg.clock_offset = '1d';
SET state_msg.max_clock_skew = '1d';
BEGIN;
SET LOCAL state_msg.min_resync_period = '1h';
ROLLBACK;
SELECT set_config('state_msg.min_resync_period', '1h', false);
\set VERBOSITY sqlstate
SET state_msg.min_resync_period = '1h';
\set VERBOSITY default
SHOW state_msg.min_resync_period;
-- (the others are theirs to choose)
SET state_msg.on_bad_message = error;
SET state_msg.batch_chunk_size = 1000;
RESET state_msg.on_bad_message;
RESET state_msg.batch_chunk_size;
RESET ROLE;

-- A superuser may delegate one (PostgreSQL 15's GRANT SET ON PARAMETER)
CREATE ROLE sm_tuner;
GRANT SET ON PARAMETER state_msg.min_resync_period TO sm_tuner;
SET ROLE sm_tuner;
SET state_msg.min_resync_period = '6h';
SHOW state_msg.min_resync_period;
SET state_msg.min_missing_message_age = '6h';
RESET state_msg.min_resync_period;
RESET ROLE;
REVOKE SET ON PARAMETER state_msg.min_resync_period FROM sm_tuner;

DROP ROLE sm_operator, sm_tuner;
