-- The SQL the previous release runs, recorded by scripts/record-release-queries.sh; RollingUpgradeTests
-- prepares each statement against the newest migrations. Statements are separated by a line ';;'.
DELETE FROM agents WHERE id = $1
;;
DELETE FROM alert_channels WHERE tenant_id = $1 AND id = $2 RETURNING id
;;
DELETE FROM alert_notifications
	WHERE (created_at < now() - $1 * interval '1 day' OR (kind = 'refresh' AND created_at < now() - interval '1 day'))
	  AND (delivered_at IS NOT NULL OR failed_at IS NOT NULL)
	RETURNING 1
;;
DELETE FROM alert_silences WHERE ends_at < now() - $1 * interval '1 day' RETURNING 1
;;
DELETE FROM alert_states WHERE tenant_id = $1 AND NOT (rule_id = ANY($2))
;;
DELETE FROM alert_states WHERE tenant_id = $1 AND rule_id = $2 AND target_id = $3
;;
DELETE FROM check_results WHERE tenant_id = $1 AND check_id = $2
;;
DELETE FROM checks WHERE tenant_id = $1 AND id = $2 RETURNING id
;;
DELETE FROM ingest_rejections
	WHERE tenant_id = $1 AND agent_id = $2
	  AND id <= (SELECT id FROM ingest_rejections WHERE tenant_id = $3 AND agent_id = $4
	             ORDER BY id DESC OFFSET $5 LIMIT 1)
;;
DELETE FROM maintenance_windows WHERE tenant_id = $1 AND id = $2 RETURNING id
;;
DELETE FROM metric_rollups WHERE bucket < now() - $1 * interval '1 day' RETURNING 1
;;
DELETE FROM rollup_dirty WHERE (tenant_id, agent_id, hour) IN (
	    SELECT tenant_id, agent_id, hour FROM rollup_dirty ORDER BY hour LIMIT $1 FOR UPDATE SKIP LOCKED)
	RETURNING tenant_id, agent_id, hour
;;
DELETE FROM services WHERE tenant_id = $1 AND id = $2 RETURNING id
;;
DELETE FROM status_spans
	WHERE tenant_id = $1 AND target_id = $2 AND ended_at IS NULL
;;
DELETE FROM status_spans WHERE ended_at < now() - $1 * interval '1 day' RETURNING 1
;;
DELETE FROM status_spans WHERE tenant_id = $1 AND target_id = $2
;;
DELETE FROM web_sessions WHERE token_hash = $1
;;
INSERT INTO agents (tenant_id, id, hostname) VALUES ($1, $2, 'host-1')
;;
INSERT INTO agents (tenant_id, id, hostname) VALUES ($1, $2, 'host-2')
;;
INSERT INTO agents (tenant_id, id, hostname) VALUES ($1, $2, 'vps')
;;
INSERT INTO agents (tenant_id, id, hostname, agent_version, interval_seconds, containers_unavailable_reason,
	                    last_seen, revoked_at)
	VALUES ($1, $2, $3, $4, $5, $6,
	        CASE WHEN $7::float8 IS NULL THEN NULL
	             ELSE now() - make_interval(secs => $8::float8) END,
	        CASE WHEN $9 THEN now() ELSE NULL END)
;;
INSERT INTO agents (tenant_id, id, hostname, agent_version, os, kernel, architecture, cpu_count,
	                    memory_total_bytes, docker_version, certificate_serial)
	VALUES ($1, $2, $3, $4, $5, $6,
	        $7, $8, $9,
	        $10, $11)
;;
INSERT INTO agents (tenant_id, id, hostname, committed_seq) VALUES ($1, $2, 'host-1', $3)
;;
INSERT INTO agents (tenant_id, id, hostname, session_id) VALUES ($1, $2, 'h', $3)
;;
INSERT INTO agents (tenant_id, id, hostname, session_id, labels)
	VALUES ($1, $2, $3, $4, $5)
;;
INSERT INTO alert_channels (tenant_id, id, name, type, destination, sealed, repost_seconds)
	SELECT $1, $2, $3, $4, $5,
	       $6, $7
	WHERE (SELECT count(*) FROM alert_channels WHERE tenant_id = $8) < $9
	RETURNING id, name, type, destination, created_at
;;
INSERT INTO alert_notifications (tenant_id, id, rule_id, channel_id, target_id, kind, payload, created_at, delivered_at, failed_at)
	VALUES ($1, gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'k-old', 'firing', '{}', now() - interval '500 days', now(), NULL),
	       ($2, gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'k-old', 'firing', '{}', now() - interval '500 days', NULL, now()),
	       ($3, gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'k-old', 'resolved', '{}', now() - interval '500 days', NULL, NULL),
	       ($4, gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'k-old', 'firing', '{}', now() - interval '10 days', now(), NULL)
;;
INSERT INTO alert_rules (tenant_id, id, name, definition)
	SELECT $1, $2, $3, $4::jsonb
	WHERE (SELECT count(*) FROM alert_rules WHERE tenant_id = $5) < $6
	RETURNING id, name, definition::text, created_at, updated_at
;;
INSERT INTO alert_rules (tenant_id, id, name, definition)
	SELECT $1, gen_random_uuid(), 'rule ' || n, '{}'::jsonb FROM generate_series(1, $2) n
;;
INSERT INTO alert_silences (tenant_id, id, rule_id, target_id, ends_at, comment, created_by)
	SELECT $1, $2, $3, $4, $5, $6, $7
	WHERE (SELECT count(*) FROM alert_silences WHERE tenant_id = $8 AND ends_at > now()) < $9
	RETURNING id, rule_id, target_id, ends_at, comment, created_by, created_at
;;
INSERT INTO alert_states (tenant_id, rule_id, target_id, status, active_since, notified_at, rule_version, announced_at,
	                          escalated_at, refreshed_at)
	VALUES ($1, $2, $3, $4,
	        'epoch'::timestamptz + $5 * interval '1 microsecond',
	        'epoch'::timestamptz + $6 * interval '1 microsecond', $7,
	        'epoch'::timestamptz + $8 * interval '1 microsecond',
	        'epoch'::timestamptz + $9 * interval '1 microsecond',
	        'epoch'::timestamptz + $10 * interval '1 microsecond')
	ON CONFLICT (tenant_id, rule_id, target_id) DO UPDATE SET status = EXCLUDED.status, active_since = EXCLUDED.active_since,
	    notified_at = EXCLUDED.notified_at, rule_version = EXCLUDED.rule_version, announced_at = EXCLUDED.announced_at,
	    escalated_at = EXCLUDED.escalated_at, refreshed_at = EXCLUDED.refreshed_at
;;
INSERT INTO api_keys (tenant_id, id, key_hash, role, expires_at)
	VALUES ($1, $2, $3, $4, $5)
;;
INSERT INTO certificate_authority (id, certificate_pem, sealed_private_key, secret_fingerprint, pin)
	VALUES (1, $1, $2, $3, $4)
;;
INSERT INTO check_results (tenant_id, check_id, slot_at, ts, agent_id, runner, token, ok, latency_ms, error,
	                           http_status, cert_not_after, figures)
	VALUES ($1, $2, $3, $4, $5, $6, 1, $7,
	        $8, $9, $10, $11, $12::jsonb)
;;
INSERT INTO check_results (tenant_id, check_id, slot_at, ts, runner, token, ok)
	SELECT $1, $2, s + interval '60 seconds', s + interval '30 seconds', 'push', 0, true
	FROM (SELECT to_timestamp(floor((extract(epoch FROM now()) - 60) / 60) * 60) AS s) slot
;;
INSERT INTO check_results (tenant_id, check_id, slot_at, ts, token, ok)
	VALUES (gen_random_uuid(), gen_random_uuid(), '2031-05-17T23:59:59.999Z', now(), 1, true)
;;
INSERT INTO check_slots AS s (tenant_id, check_id, slot_at, member, token, agent_id, runner)
	SELECT u.tenant_id, u.check_id, u.slot_at, u.member, u.token, nullif(u.agent_id, '')::uuid, u.runner
	FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::uuid[],
	            $5::int8[], $6::text[], $7::text[], $8::text[])
	     AS u(tenant_id, check_id, slot_at, member, token, agent_id, runner, lease_key)
	JOIN leases l ON l.key = u.lease_key AND l.token = u.token AND l.released_at IS NULL
	    AND l.expires_at > statement_timestamp()
	ORDER BY u.tenant_id, u.check_id, u.slot_at, u.member
	ON CONFLICT (tenant_id, check_id, slot_at, member) DO UPDATE
	    SET token = EXCLUDED.token, agent_id = EXCLUDED.agent_id, runner = EXCLUDED.runner,
	        assigned_at = now()
	    WHERE s.token < EXCLUDED.token
	RETURNING tenant_id, check_id, slot_at, token
;;
INSERT INTO check_slots AS s (tenant_id, check_id, slot_at, token, agent_id, runner)
	VALUES ($1, $2, $3, $4, $5, $6)
	ON CONFLICT (tenant_id, check_id, slot_at, member) DO UPDATE
	    SET token = EXCLUDED.token, agent_id = EXCLUDED.agent_id, runner = EXCLUDED.runner,
	        assigned_at = now()
	    WHERE s.token < EXCLUDED.token
	RETURNING token
;;
INSERT INTO checks (tenant_id, id, name, type, interval_seconds, timeout_ms, run_on, options, push_token,
	                    paused, created_at, updated_at)
	VALUES ($1, $2, $3, 'push', 60, 1000, '{"mode":"server"}', '{"grace_seconds":0}',
	        $4, $5, now() - interval '2 hours',
	        now() - $6 * interval '1 second')
;;
INSERT INTO checks (tenant_id, id, name, type, target, interval_seconds, timeout_ms)
	VALUES ($1, $2, 'home', 'http', 'https://example.com/', 60, 48000)
;;
INSERT INTO checks (tenant_id, id, name, type, target, interval_seconds, timeout_ms, run_on)
	VALUES ($1, $2, $3, 'tcp', $4, 300, 2000, '{"mode":"server"}')
;;
INSERT INTO checks (tenant_id, id, name, type, target, interval_seconds, timeout_ms, run_on, options, paused, push_token)
	VALUES ($1, $2, $3, $4, 'http://127.0.0.1:9/', $5, 1000, $6::jsonb,
	        '{"method":"GET","follow_redirects":true}'::jsonb, $7, $8)
;;
INSERT INTO container_events (tenant_id, agent_id, name, ts, action, docker_id)
	VALUES ($1, $2, 'db', '2025-03-05 12:00:00+00', 'oom', 'd2') ON CONFLICT DO NOTHING
;;
INSERT INTO container_events (tenant_id, agent_id, name, ts, action, docker_id, exit_code)
	VALUES ($1, $2, 'web', '2025-03-01 23:59:59.5+00', 'die', 'd1', 1),
	       ($3, $4, 'web', '2025-03-02 00:00:01+00', 'start', 'd1', NULL),
	       ($5, $6, 'db', '2025-03-05 12:00:00+00', 'oom', 'd2', NULL)
;;
INSERT INTO container_events (tenant_id, agent_id, name, ts, action, docker_id, exit_code, detail)
	VALUES ($1, $2, $3, $4, $5, 'abc123', $6, $7)
;;
INSERT INTO container_samples (tenant_id, agent_id, name, ts, docker_id, state, cpu_percent,
	    memory_working_set_bytes, memory_usage_bytes, memory_limit_bytes, net_rx_bytes_per_second,
	    net_tx_bytes_per_second, block_read_bytes_per_second, block_write_bytes_per_second, pids)
	VALUES ($1, $2, $3, $4, 'abc123', 'running', $5, $6, $7,
	    $8, $9, $10, $11, $12, $13)
;;
INSERT INTO container_samples (tenant_id, agent_id, name, ts, docker_id, state, cpu_percent, memory_usage_bytes,
	                               memory_limit_bytes, pids)
	SELECT $1, $2, 'web', date_trunc('hour', now()) - interval '3 hours' + k * interval '30 seconds',
	       'd1', 'running', (k % 7)::float8 * 10, 5000 + k, 10000, k % 4
	FROM generate_series(0, 239) k
;;
INSERT INTO containers (tenant_id, agent_id, name, docker_id, image, state, health, health_output, exit_code,
	                        restart_count, oom_killed, started_at, finished_at, updated_at, removed_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
	        $10, $11, $12::timestamptz, $13::timestamptz, now(),
	        CASE WHEN $14 THEN now() ELSE NULL END)
;;
INSERT INTO enrollment_tokens (tenant_id, id, token_hash, expires_at, uses_allowed)
	VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5)
;;
INSERT INTO host_samples (tenant_id, agent_id, ts, cpu_percent) VALUES
	    ($1, $2, date_trunc('hour', now()) - interval '3 hours' + interval '15 seconds', 1000)
;;
INSERT INTO host_samples (tenant_id, agent_id, ts, cpu_percent, memory_total_bytes, memory_available_bytes,
	                          net_rx_bytes_per_second, net_tx_bytes_per_second, filesystems)
	SELECT $1, $2, date_trunc('hour', now()) - interval '3 hours' + k * interval '30 seconds',
	       (k % 10)::float8, 1000, 1000 - k, k * 2, k * 3,
	       jsonb_build_array(jsonb_build_object('mountpoint', '/', 'size_bytes', 200, 'free_bytes', 200 - (k % 100)))
	FROM generate_series(0, 239) k
;;
INSERT INTO host_samples (tenant_id, agent_id, ts, cpu_percent, memory_total_bytes, memory_available_bytes,
	    net_rx_bytes_per_second, net_tx_bytes_per_second)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
;;
INSERT INTO host_samples (tenant_id, agent_id, ts, cpu_total_ns, cpu_idle_ns, cpu_iowait_ns, cpu_count, load1, load5,
	    load15, memory_total_bytes, memory_available_bytes, swap_total_bytes, swap_free_bytes, net_rx_bytes,
	    net_tx_bytes, uptime_seconds, filesystems, cpu_percent, net_rx_bytes_per_second, net_tx_bytes_per_second)
	SELECT $1, $2, 'epoch'::timestamptz + u.ts_ms * interval '1 millisecond', u.cpu_total, u.cpu_idle,
	    u.cpu_iowait, u.cpu_count, u.load1, u.load5, u.load15, u.memory_total, u.memory_available, u.swap_total,
	    u.swap_free, u.rx, u.tx, u.uptime, u.filesystems::jsonb,
	    NULLIF(u.cpu_percent, 'NaN'), NULLIF(u.rx_rate, 'NaN'), NULLIF(u.tx_rate, 'NaN')
	FROM unnest($3::bigint[], $4::bigint[],
	            $5::bigint[], $6::bigint[],
	            $7::integer[], $8::float8[],
	            $9::float8[], $10::float8[],
	            $11::bigint[],
	            $12::bigint[],
	            $13::bigint[],
	            $14::bigint[], $15::bigint[],
	            $16::bigint[], $17::bigint[],
	            $18::text[], $19::float8[],
	            $20::float8[],
	            $21::float8[])
	    AS u(ts_ms, cpu_total, cpu_idle, cpu_iowait, cpu_count, load1, load5, load15, memory_total, memory_available,
	         swap_total, swap_free, rx, tx, uptime, filesystems, cpu_percent, rx_rate, tx_rate)
	ON CONFLICT (tenant_id, agent_id, ts) DO NOTHING
;;
INSERT INTO lease_counters AS c (key, value, expires_at)
	VALUES ($1, 1, statement_timestamp() + $2 * interval '1 millisecond')
	ON CONFLICT (key) DO UPDATE SET
	    value = CASE WHEN c.expires_at <= statement_timestamp() THEN 1 ELSE c.value + 1 END,
	    expires_at = CASE WHEN c.expires_at <= statement_timestamp() THEN EXCLUDED.expires_at
	                      ELSE c.expires_at END
	RETURNING value, expires_at
;;
INSERT INTO leases AS l (key, holder, token, acquired_at, expires_at)
	SELECT $1, $2, crowsnest_next_lease_token(), statement_timestamp(),
	       statement_timestamp() + $3 * interval '1 millisecond'
	WHERE NOT EXISTS (SELECT 1 FROM leases WHERE key = $4 AND expires_at > statement_timestamp())
	ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, token = crowsnest_next_lease_token(),
	    acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at, released_at = NULL
	WHERE l.expires_at <= statement_timestamp()
	RETURNING token, acquired_at, expires_at
;;
INSERT INTO leases AS l (key, holder, token, acquired_at, expires_at)
	SELECT 'agent:' || a.id::text, 'session:' || a.session_id::text, crowsnest_next_lease_token(),
	       statement_timestamp(), statement_timestamp() + $1 * interval '1 millisecond'
	FROM unnest($2::uuid[], $3::uuid[],
	            $4::uuid[]) AS u(tenant_id, agent_id, session_id)
	JOIN agents a ON a.tenant_id = u.tenant_id AND a.id = u.agent_id AND a.session_id = u.session_id
	    AND a.revoked_at IS NULL
	ORDER BY 1
	ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, token = crowsnest_next_lease_token(),
	    acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at, released_at = NULL
	RETURNING key, holder, token, acquired_at, expires_at
;;
INSERT INTO leases AS l (key, holder, token, acquired_at, expires_at)
	SELECT u.key, u.holder, crowsnest_next_lease_token(), statement_timestamp(),
	       statement_timestamp() + $1 * interval '1 millisecond'
	FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(key, holder, n)
	WHERE NOT EXISTS (SELECT 1 FROM leases h WHERE h.key = u.key AND h.expires_at > statement_timestamp())
	ORDER BY u.n
	ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, token = crowsnest_next_lease_token(),
	    acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at, released_at = NULL
	WHERE l.expires_at <= statement_timestamp()
	RETURNING key, holder, token, acquired_at, expires_at
;;
INSERT INTO maintenance_windows (tenant_id, id, name, definition)
	SELECT $1, $2, $3, $4::jsonb
	WHERE (SELECT count(*) FROM maintenance_windows WHERE tenant_id = $5) < $6
	RETURNING id, name, definition::text, created_at, updated_at
;;
INSERT INTO maintenance_windows (tenant_id, id, name, definition)
	SELECT $1, gen_random_uuid(), 'w' || n,
	       '{"name":"w","recurrence":{"days":["sun"],"start":"02:00","duration_minutes":60}}'::jsonb
	FROM generate_series(1, $2) n
;;
INSERT INTO metric_rollups (tenant_id, target_id, step_seconds, bucket, samples, cpu_avg, cpu_min, cpu_max, memory_avg, memory_min, memory_max, memory_limit_avg, memory_limit_min, memory_limit_max, rx_avg, rx_min, rx_max, tx_avg, tx_min, tx_max, read_avg, read_min, read_max, write_avg, write_min, write_max, pids_avg, pids_min, pids_max, disk_avg, disk_min, disk_max)
	SELECT tenant_id, 'c-' || agent_id::text || '-' || name, 300, date_bin(make_interval(secs => 300), ts, 'epoch') AS b, count(*)::int,
	          avg(cpu_percent)::float8, min(cpu_percent)::float8, max(cpu_percent)::float8, avg(coalesce(memory_working_set_bytes, memory_usage_bytes))::float8, min(coalesce(memory_working_set_bytes, memory_usage_bytes))::float8, max(coalesce(memory_working_set_bytes, memory_usage_bytes))::float8, avg(nullif(memory_limit_bytes, 0))::float8, min(nullif(memory_limit_bytes, 0))::float8, max(nullif(memory_limit_bytes, 0))::float8, avg(net_rx_bytes_per_second)::float8, min(net_rx_bytes_per_second)::float8, max(net_rx_bytes_per_second)::float8, avg(net_tx_bytes_per_second)::float8, min(net_tx_bytes_per_second)::float8, max(net_tx_bytes_per_second)::float8, avg(block_read_bytes_per_second)::float8, min(block_read_bytes_per_second)::float8, max(block_read_bytes_per_second)::float8, avg(block_write_bytes_per_second)::float8, min(block_write_bytes_per_second)::float8, max(block_write_bytes_per_second)::float8, avg(pids)::float8, min(pids)::float8, max(pids)::float8, avg(NULL::float8)::float8, min(NULL::float8)::float8, max(NULL::float8)::float8
	FROM container_samples
	WHERE ts >= $1 AND ts < $2 AND tenant_id = $3 AND agent_id = $4 GROUP BY tenant_id, agent_id, name, b ON CONFLICT (tenant_id, target_id, step_seconds, bucket) DO UPDATE SET samples = EXCLUDED.samples, cpu_avg = EXCLUDED.cpu_avg, cpu_min = EXCLUDED.cpu_min, cpu_max = EXCLUDED.cpu_max, memory_avg = EXCLUDED.memory_avg, memory_min = EXCLUDED.memory_min, memory_max = EXCLUDED.memory_max, memory_limit_avg = EXCLUDED.memory_limit_avg, memory_limit_min = EXCLUDED.memory_limit_min, memory_limit_max = EXCLUDED.memory_limit_max, rx_avg = EXCLUDED.rx_avg, rx_min = EXCLUDED.rx_min, rx_max = EXCLUDED.rx_max, tx_avg = EXCLUDED.tx_avg, tx_min = EXCLUDED.tx_min, tx_max = EXCLUDED.tx_max, read_avg = EXCLUDED.read_avg, read_min = EXCLUDED.read_min, read_max = EXCLUDED.read_max, write_avg = EXCLUDED.write_avg, write_min = EXCLUDED.write_min, write_max = EXCLUDED.write_max, pids_avg = EXCLUDED.pids_avg, pids_min = EXCLUDED.pids_min, pids_max = EXCLUDED.pids_max, disk_avg = EXCLUDED.disk_avg, disk_min = EXCLUDED.disk_min, disk_max = EXCLUDED.disk_max
;;
INSERT INTO metric_rollups (tenant_id, target_id, step_seconds, bucket, samples, cpu_avg, cpu_min, cpu_max, memory_avg, memory_min, memory_max, memory_limit_avg, memory_limit_min, memory_limit_max, rx_avg, rx_min, rx_max, tx_avg, tx_min, tx_max, read_avg, read_min, read_max, write_avg, write_min, write_max, pids_avg, pids_min, pids_max, disk_avg, disk_min, disk_max)
	SELECT tenant_id, 'c-' || agent_id::text || '-' || name, 300, date_bin(make_interval(secs => 300), ts, 'epoch') AS b, count(*)::int,
	          avg(cpu_percent)::float8, min(cpu_percent)::float8, max(cpu_percent)::float8, avg(coalesce(memory_working_set_bytes, memory_usage_bytes))::float8, min(coalesce(memory_working_set_bytes, memory_usage_bytes))::float8, max(coalesce(memory_working_set_bytes, memory_usage_bytes))::float8, avg(nullif(memory_limit_bytes, 0))::float8, min(nullif(memory_limit_bytes, 0))::float8, max(nullif(memory_limit_bytes, 0))::float8, avg(net_rx_bytes_per_second)::float8, min(net_rx_bytes_per_second)::float8, max(net_rx_bytes_per_second)::float8, avg(net_tx_bytes_per_second)::float8, min(net_tx_bytes_per_second)::float8, max(net_tx_bytes_per_second)::float8, avg(block_read_bytes_per_second)::float8, min(block_read_bytes_per_second)::float8, max(block_read_bytes_per_second)::float8, avg(block_write_bytes_per_second)::float8, min(block_write_bytes_per_second)::float8, max(block_write_bytes_per_second)::float8, avg(pids)::float8, min(pids)::float8, max(pids)::float8, avg(NULL::float8)::float8, min(NULL::float8)::float8, max(NULL::float8)::float8
	FROM container_samples
	WHERE ts >= $1 AND ts < $2 GROUP BY tenant_id, agent_id, name, b ON CONFLICT (tenant_id, target_id, step_seconds, bucket) DO UPDATE SET samples = EXCLUDED.samples, cpu_avg = EXCLUDED.cpu_avg, cpu_min = EXCLUDED.cpu_min, cpu_max = EXCLUDED.cpu_max, memory_avg = EXCLUDED.memory_avg, memory_min = EXCLUDED.memory_min, memory_max = EXCLUDED.memory_max, memory_limit_avg = EXCLUDED.memory_limit_avg, memory_limit_min = EXCLUDED.memory_limit_min, memory_limit_max = EXCLUDED.memory_limit_max, rx_avg = EXCLUDED.rx_avg, rx_min = EXCLUDED.rx_min, rx_max = EXCLUDED.rx_max, tx_avg = EXCLUDED.tx_avg, tx_min = EXCLUDED.tx_min, tx_max = EXCLUDED.tx_max, read_avg = EXCLUDED.read_avg, read_min = EXCLUDED.read_min, read_max = EXCLUDED.read_max, write_avg = EXCLUDED.write_avg, write_min = EXCLUDED.write_min, write_max = EXCLUDED.write_max, pids_avg = EXCLUDED.pids_avg, pids_min = EXCLUDED.pids_min, pids_max = EXCLUDED.pids_max, disk_avg = EXCLUDED.disk_avg, disk_min = EXCLUDED.disk_min, disk_max = EXCLUDED.disk_max
;;
INSERT INTO metric_rollups (tenant_id, target_id, step_seconds, bucket, samples, cpu_avg, cpu_min, cpu_max, memory_avg, memory_min, memory_max, memory_limit_avg, memory_limit_min, memory_limit_max, rx_avg, rx_min, rx_max, tx_avg, tx_min, tx_max, read_avg, read_min, read_max, write_avg, write_min, write_max, pids_avg, pids_min, pids_max, disk_avg, disk_min, disk_max)
	SELECT tenant_id, 'c-' || agent_id::text || '-' || name, 3600, date_bin(make_interval(secs => 3600), ts, 'epoch') AS b, count(*)::int,
	          avg(cpu_percent)::float8, min(cpu_percent)::float8, max(cpu_percent)::float8, avg(coalesce(memory_working_set_bytes, memory_usage_bytes))::float8, min(coalesce(memory_working_set_bytes, memory_usage_bytes))::float8, max(coalesce(memory_working_set_bytes, memory_usage_bytes))::float8, avg(nullif(memory_limit_bytes, 0))::float8, min(nullif(memory_limit_bytes, 0))::float8, max(nullif(memory_limit_bytes, 0))::float8, avg(net_rx_bytes_per_second)::float8, min(net_rx_bytes_per_second)::float8, max(net_rx_bytes_per_second)::float8, avg(net_tx_bytes_per_second)::float8, min(net_tx_bytes_per_second)::float8, max(net_tx_bytes_per_second)::float8, avg(block_read_bytes_per_second)::float8, min(block_read_bytes_per_second)::float8, max(block_read_bytes_per_second)::float8, avg(block_write_bytes_per_second)::float8, min(block_write_bytes_per_second)::float8, max(block_write_bytes_per_second)::float8, avg(pids)::float8, min(pids)::float8, max(pids)::float8, avg(NULL::float8)::float8, min(NULL::float8)::float8, max(NULL::float8)::float8
	FROM container_samples
	WHERE ts >= $1 AND ts < $2 AND tenant_id = $3 AND agent_id = $4 GROUP BY tenant_id, agent_id, name, b ON CONFLICT (tenant_id, target_id, step_seconds, bucket) DO UPDATE SET samples = EXCLUDED.samples, cpu_avg = EXCLUDED.cpu_avg, cpu_min = EXCLUDED.cpu_min, cpu_max = EXCLUDED.cpu_max, memory_avg = EXCLUDED.memory_avg, memory_min = EXCLUDED.memory_min, memory_max = EXCLUDED.memory_max, memory_limit_avg = EXCLUDED.memory_limit_avg, memory_limit_min = EXCLUDED.memory_limit_min, memory_limit_max = EXCLUDED.memory_limit_max, rx_avg = EXCLUDED.rx_avg, rx_min = EXCLUDED.rx_min, rx_max = EXCLUDED.rx_max, tx_avg = EXCLUDED.tx_avg, tx_min = EXCLUDED.tx_min, tx_max = EXCLUDED.tx_max, read_avg = EXCLUDED.read_avg, read_min = EXCLUDED.read_min, read_max = EXCLUDED.read_max, write_avg = EXCLUDED.write_avg, write_min = EXCLUDED.write_min, write_max = EXCLUDED.write_max, pids_avg = EXCLUDED.pids_avg, pids_min = EXCLUDED.pids_min, pids_max = EXCLUDED.pids_max, disk_avg = EXCLUDED.disk_avg, disk_min = EXCLUDED.disk_min, disk_max = EXCLUDED.disk_max
;;
INSERT INTO metric_rollups (tenant_id, target_id, step_seconds, bucket, samples, cpu_avg, cpu_min, cpu_max, memory_avg, memory_min, memory_max, memory_limit_avg, memory_limit_min, memory_limit_max, rx_avg, rx_min, rx_max, tx_avg, tx_min, tx_max, read_avg, read_min, read_max, write_avg, write_min, write_max, pids_avg, pids_min, pids_max, disk_avg, disk_min, disk_max)
	SELECT tenant_id, 'c-' || agent_id::text || '-' || name, 3600, date_bin(make_interval(secs => 3600), ts, 'epoch') AS b, count(*)::int,
	          avg(cpu_percent)::float8, min(cpu_percent)::float8, max(cpu_percent)::float8, avg(coalesce(memory_working_set_bytes, memory_usage_bytes))::float8, min(coalesce(memory_working_set_bytes, memory_usage_bytes))::float8, max(coalesce(memory_working_set_bytes, memory_usage_bytes))::float8, avg(nullif(memory_limit_bytes, 0))::float8, min(nullif(memory_limit_bytes, 0))::float8, max(nullif(memory_limit_bytes, 0))::float8, avg(net_rx_bytes_per_second)::float8, min(net_rx_bytes_per_second)::float8, max(net_rx_bytes_per_second)::float8, avg(net_tx_bytes_per_second)::float8, min(net_tx_bytes_per_second)::float8, max(net_tx_bytes_per_second)::float8, avg(block_read_bytes_per_second)::float8, min(block_read_bytes_per_second)::float8, max(block_read_bytes_per_second)::float8, avg(block_write_bytes_per_second)::float8, min(block_write_bytes_per_second)::float8, max(block_write_bytes_per_second)::float8, avg(pids)::float8, min(pids)::float8, max(pids)::float8, avg(NULL::float8)::float8, min(NULL::float8)::float8, max(NULL::float8)::float8
	FROM container_samples
	WHERE ts >= $1 AND ts < $2 GROUP BY tenant_id, agent_id, name, b ON CONFLICT (tenant_id, target_id, step_seconds, bucket) DO UPDATE SET samples = EXCLUDED.samples, cpu_avg = EXCLUDED.cpu_avg, cpu_min = EXCLUDED.cpu_min, cpu_max = EXCLUDED.cpu_max, memory_avg = EXCLUDED.memory_avg, memory_min = EXCLUDED.memory_min, memory_max = EXCLUDED.memory_max, memory_limit_avg = EXCLUDED.memory_limit_avg, memory_limit_min = EXCLUDED.memory_limit_min, memory_limit_max = EXCLUDED.memory_limit_max, rx_avg = EXCLUDED.rx_avg, rx_min = EXCLUDED.rx_min, rx_max = EXCLUDED.rx_max, tx_avg = EXCLUDED.tx_avg, tx_min = EXCLUDED.tx_min, tx_max = EXCLUDED.tx_max, read_avg = EXCLUDED.read_avg, read_min = EXCLUDED.read_min, read_max = EXCLUDED.read_max, write_avg = EXCLUDED.write_avg, write_min = EXCLUDED.write_min, write_max = EXCLUDED.write_max, pids_avg = EXCLUDED.pids_avg, pids_min = EXCLUDED.pids_min, pids_max = EXCLUDED.pids_max, disk_avg = EXCLUDED.disk_avg, disk_min = EXCLUDED.disk_min, disk_max = EXCLUDED.disk_max
;;
INSERT INTO metric_rollups (tenant_id, target_id, step_seconds, bucket, samples, cpu_avg, cpu_min, cpu_max, memory_avg, memory_min, memory_max, memory_limit_avg, memory_limit_min, memory_limit_max, rx_avg, rx_min, rx_max, tx_avg, tx_min, tx_max, read_avg, read_min, read_max, write_avg, write_min, write_max, pids_avg, pids_min, pids_max, disk_avg, disk_min, disk_max)
	SELECT tenant_id, 'h-' || agent_id::text, 300, date_bin(make_interval(secs => 300), ts, 'epoch') AS b, count(*)::int,
	          avg(cpu_percent)::float8, min(cpu_percent)::float8, max(cpu_percent)::float8, avg(memory_total_bytes - memory_available_bytes)::float8, min(memory_total_bytes - memory_available_bytes)::float8, max(memory_total_bytes - memory_available_bytes)::float8, avg(memory_total_bytes)::float8, min(memory_total_bytes)::float8, max(memory_total_bytes)::float8, avg(net_rx_bytes_per_second)::float8, min(net_rx_bytes_per_second)::float8, max(net_rx_bytes_per_second)::float8, avg(net_tx_bytes_per_second)::float8, min(net_tx_bytes_per_second)::float8, max(net_tx_bytes_per_second)::float8, avg(NULL::float8)::float8, min(NULL::float8)::float8, max(NULL::float8)::float8, avg(NULL::float8)::float8, min(NULL::float8)::float8, max(NULL::float8)::float8, avg(NULL::float8)::float8, min(NULL::float8)::float8, max(NULL::float8)::float8, avg(d.disk_percent)::float8, min(d.disk_percent)::float8, max(d.disk_percent)::float8
	FROM host_samples CROSS JOIN LATERAL (
	    SELECT max(((f->>'size_bytes')::float8 - (f->>'free_bytes')::float8) * 100 / nullif((f->>'size_bytes')::float8, 0))
	           AS disk_percent
	    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(filesystems) = 'array' THEN filesystems ELSE '[]'::jsonb END) f) d
	WHERE ts >= $1 AND ts < $2 AND tenant_id = $3 AND agent_id = $4 GROUP BY tenant_id, agent_id, b ON CONFLICT (tenant_id, target_id, step_seconds, bucket) DO UPDATE SET samples = EXCLUDED.samples, cpu_avg = EXCLUDED.cpu_avg, cpu_min = EXCLUDED.cpu_min, cpu_max = EXCLUDED.cpu_max, memory_avg = EXCLUDED.memory_avg, memory_min = EXCLUDED.memory_min, memory_max = EXCLUDED.memory_max, memory_limit_avg = EXCLUDED.memory_limit_avg, memory_limit_min = EXCLUDED.memory_limit_min, memory_limit_max = EXCLUDED.memory_limit_max, rx_avg = EXCLUDED.rx_avg, rx_min = EXCLUDED.rx_min, rx_max = EXCLUDED.rx_max, tx_avg = EXCLUDED.tx_avg, tx_min = EXCLUDED.tx_min, tx_max = EXCLUDED.tx_max, read_avg = EXCLUDED.read_avg, read_min = EXCLUDED.read_min, read_max = EXCLUDED.read_max, write_avg = EXCLUDED.write_avg, write_min = EXCLUDED.write_min, write_max = EXCLUDED.write_max, pids_avg = EXCLUDED.pids_avg, pids_min = EXCLUDED.pids_min, pids_max = EXCLUDED.pids_max, disk_avg = EXCLUDED.disk_avg, disk_min = EXCLUDED.disk_min, disk_max = EXCLUDED.disk_max
;;
INSERT INTO metric_rollups (tenant_id, target_id, step_seconds, bucket, samples, cpu_avg, cpu_min, cpu_max, memory_avg, memory_min, memory_max, memory_limit_avg, memory_limit_min, memory_limit_max, rx_avg, rx_min, rx_max, tx_avg, tx_min, tx_max, read_avg, read_min, read_max, write_avg, write_min, write_max, pids_avg, pids_min, pids_max, disk_avg, disk_min, disk_max)
	SELECT tenant_id, 'h-' || agent_id::text, 300, date_bin(make_interval(secs => 300), ts, 'epoch') AS b, count(*)::int,
	          avg(cpu_percent)::float8, min(cpu_percent)::float8, max(cpu_percent)::float8, avg(memory_total_bytes - memory_available_bytes)::float8, min(memory_total_bytes - memory_available_bytes)::float8, max(memory_total_bytes - memory_available_bytes)::float8, avg(memory_total_bytes)::float8, min(memory_total_bytes)::float8, max(memory_total_bytes)::float8, avg(net_rx_bytes_per_second)::float8, min(net_rx_bytes_per_second)::float8, max(net_rx_bytes_per_second)::float8, avg(net_tx_bytes_per_second)::float8, min(net_tx_bytes_per_second)::float8, max(net_tx_bytes_per_second)::float8, avg(NULL::float8)::float8, min(NULL::float8)::float8, max(NULL::float8)::float8, avg(NULL::float8)::float8, min(NULL::float8)::float8, max(NULL::float8)::float8, avg(NULL::float8)::float8, min(NULL::float8)::float8, max(NULL::float8)::float8, avg(d.disk_percent)::float8, min(d.disk_percent)::float8, max(d.disk_percent)::float8
	FROM host_samples CROSS JOIN LATERAL (
	    SELECT max(((f->>'size_bytes')::float8 - (f->>'free_bytes')::float8) * 100 / nullif((f->>'size_bytes')::float8, 0))
	           AS disk_percent
	    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(filesystems) = 'array' THEN filesystems ELSE '[]'::jsonb END) f) d
	WHERE ts >= $1 AND ts < $2 GROUP BY tenant_id, agent_id, b ON CONFLICT (tenant_id, target_id, step_seconds, bucket) DO UPDATE SET samples = EXCLUDED.samples, cpu_avg = EXCLUDED.cpu_avg, cpu_min = EXCLUDED.cpu_min, cpu_max = EXCLUDED.cpu_max, memory_avg = EXCLUDED.memory_avg, memory_min = EXCLUDED.memory_min, memory_max = EXCLUDED.memory_max, memory_limit_avg = EXCLUDED.memory_limit_avg, memory_limit_min = EXCLUDED.memory_limit_min, memory_limit_max = EXCLUDED.memory_limit_max, rx_avg = EXCLUDED.rx_avg, rx_min = EXCLUDED.rx_min, rx_max = EXCLUDED.rx_max, tx_avg = EXCLUDED.tx_avg, tx_min = EXCLUDED.tx_min, tx_max = EXCLUDED.tx_max, read_avg = EXCLUDED.read_avg, read_min = EXCLUDED.read_min, read_max = EXCLUDED.read_max, write_avg = EXCLUDED.write_avg, write_min = EXCLUDED.write_min, write_max = EXCLUDED.write_max, pids_avg = EXCLUDED.pids_avg, pids_min = EXCLUDED.pids_min, pids_max = EXCLUDED.pids_max, disk_avg = EXCLUDED.disk_avg, disk_min = EXCLUDED.disk_min, disk_max = EXCLUDED.disk_max
;;
INSERT INTO metric_rollups (tenant_id, target_id, step_seconds, bucket, samples, cpu_avg, cpu_min, cpu_max, memory_avg, memory_min, memory_max, memory_limit_avg, memory_limit_min, memory_limit_max, rx_avg, rx_min, rx_max, tx_avg, tx_min, tx_max, read_avg, read_min, read_max, write_avg, write_min, write_max, pids_avg, pids_min, pids_max, disk_avg, disk_min, disk_max)
	SELECT tenant_id, 'h-' || agent_id::text, 3600, date_bin(make_interval(secs => 3600), ts, 'epoch') AS b, count(*)::int,
	          avg(cpu_percent)::float8, min(cpu_percent)::float8, max(cpu_percent)::float8, avg(memory_total_bytes - memory_available_bytes)::float8, min(memory_total_bytes - memory_available_bytes)::float8, max(memory_total_bytes - memory_available_bytes)::float8, avg(memory_total_bytes)::float8, min(memory_total_bytes)::float8, max(memory_total_bytes)::float8, avg(net_rx_bytes_per_second)::float8, min(net_rx_bytes_per_second)::float8, max(net_rx_bytes_per_second)::float8, avg(net_tx_bytes_per_second)::float8, min(net_tx_bytes_per_second)::float8, max(net_tx_bytes_per_second)::float8, avg(NULL::float8)::float8, min(NULL::float8)::float8, max(NULL::float8)::float8, avg(NULL::float8)::float8, min(NULL::float8)::float8, max(NULL::float8)::float8, avg(NULL::float8)::float8, min(NULL::float8)::float8, max(NULL::float8)::float8, avg(d.disk_percent)::float8, min(d.disk_percent)::float8, max(d.disk_percent)::float8
	FROM host_samples CROSS JOIN LATERAL (
	    SELECT max(((f->>'size_bytes')::float8 - (f->>'free_bytes')::float8) * 100 / nullif((f->>'size_bytes')::float8, 0))
	           AS disk_percent
	    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(filesystems) = 'array' THEN filesystems ELSE '[]'::jsonb END) f) d
	WHERE ts >= $1 AND ts < $2 AND tenant_id = $3 AND agent_id = $4 GROUP BY tenant_id, agent_id, b ON CONFLICT (tenant_id, target_id, step_seconds, bucket) DO UPDATE SET samples = EXCLUDED.samples, cpu_avg = EXCLUDED.cpu_avg, cpu_min = EXCLUDED.cpu_min, cpu_max = EXCLUDED.cpu_max, memory_avg = EXCLUDED.memory_avg, memory_min = EXCLUDED.memory_min, memory_max = EXCLUDED.memory_max, memory_limit_avg = EXCLUDED.memory_limit_avg, memory_limit_min = EXCLUDED.memory_limit_min, memory_limit_max = EXCLUDED.memory_limit_max, rx_avg = EXCLUDED.rx_avg, rx_min = EXCLUDED.rx_min, rx_max = EXCLUDED.rx_max, tx_avg = EXCLUDED.tx_avg, tx_min = EXCLUDED.tx_min, tx_max = EXCLUDED.tx_max, read_avg = EXCLUDED.read_avg, read_min = EXCLUDED.read_min, read_max = EXCLUDED.read_max, write_avg = EXCLUDED.write_avg, write_min = EXCLUDED.write_min, write_max = EXCLUDED.write_max, pids_avg = EXCLUDED.pids_avg, pids_min = EXCLUDED.pids_min, pids_max = EXCLUDED.pids_max, disk_avg = EXCLUDED.disk_avg, disk_min = EXCLUDED.disk_min, disk_max = EXCLUDED.disk_max
;;
INSERT INTO metric_rollups (tenant_id, target_id, step_seconds, bucket, samples, cpu_avg, cpu_min, cpu_max, memory_avg, memory_min, memory_max, memory_limit_avg, memory_limit_min, memory_limit_max, rx_avg, rx_min, rx_max, tx_avg, tx_min, tx_max, read_avg, read_min, read_max, write_avg, write_min, write_max, pids_avg, pids_min, pids_max, disk_avg, disk_min, disk_max)
	SELECT tenant_id, 'h-' || agent_id::text, 3600, date_bin(make_interval(secs => 3600), ts, 'epoch') AS b, count(*)::int,
	          avg(cpu_percent)::float8, min(cpu_percent)::float8, max(cpu_percent)::float8, avg(memory_total_bytes - memory_available_bytes)::float8, min(memory_total_bytes - memory_available_bytes)::float8, max(memory_total_bytes - memory_available_bytes)::float8, avg(memory_total_bytes)::float8, min(memory_total_bytes)::float8, max(memory_total_bytes)::float8, avg(net_rx_bytes_per_second)::float8, min(net_rx_bytes_per_second)::float8, max(net_rx_bytes_per_second)::float8, avg(net_tx_bytes_per_second)::float8, min(net_tx_bytes_per_second)::float8, max(net_tx_bytes_per_second)::float8, avg(NULL::float8)::float8, min(NULL::float8)::float8, max(NULL::float8)::float8, avg(NULL::float8)::float8, min(NULL::float8)::float8, max(NULL::float8)::float8, avg(NULL::float8)::float8, min(NULL::float8)::float8, max(NULL::float8)::float8, avg(d.disk_percent)::float8, min(d.disk_percent)::float8, max(d.disk_percent)::float8
	FROM host_samples CROSS JOIN LATERAL (
	    SELECT max(((f->>'size_bytes')::float8 - (f->>'free_bytes')::float8) * 100 / nullif((f->>'size_bytes')::float8, 0))
	           AS disk_percent
	    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(filesystems) = 'array' THEN filesystems ELSE '[]'::jsonb END) f) d
	WHERE ts >= $1 AND ts < $2 GROUP BY tenant_id, agent_id, b ON CONFLICT (tenant_id, target_id, step_seconds, bucket) DO UPDATE SET samples = EXCLUDED.samples, cpu_avg = EXCLUDED.cpu_avg, cpu_min = EXCLUDED.cpu_min, cpu_max = EXCLUDED.cpu_max, memory_avg = EXCLUDED.memory_avg, memory_min = EXCLUDED.memory_min, memory_max = EXCLUDED.memory_max, memory_limit_avg = EXCLUDED.memory_limit_avg, memory_limit_min = EXCLUDED.memory_limit_min, memory_limit_max = EXCLUDED.memory_limit_max, rx_avg = EXCLUDED.rx_avg, rx_min = EXCLUDED.rx_min, rx_max = EXCLUDED.rx_max, tx_avg = EXCLUDED.tx_avg, tx_min = EXCLUDED.tx_min, tx_max = EXCLUDED.tx_max, read_avg = EXCLUDED.read_avg, read_min = EXCLUDED.read_min, read_max = EXCLUDED.read_max, write_avg = EXCLUDED.write_avg, write_min = EXCLUDED.write_min, write_max = EXCLUDED.write_max, pids_avg = EXCLUDED.pids_avg, pids_min = EXCLUDED.pids_min, pids_max = EXCLUDED.pids_max, disk_avg = EXCLUDED.disk_avg, disk_min = EXCLUDED.disk_min, disk_max = EXCLUDED.disk_max
;;
INSERT INTO rollup_dirty (tenant_id, agent_id, hour)
	SELECT $1, $2, to_timestamp(h / 1000.0) FROM unnest($3::int8[]) AS h
	ON CONFLICT DO NOTHING
;;
INSERT INTO rollup_progress (step_seconds, rolled_through)
	SELECT $1, coalesce(date_bin(make_interval(secs => $2), least(
	    (SELECT min(ts) FROM host_samples), (SELECT min(ts) FROM container_samples)), 'epoch'), now())
	ON CONFLICT (step_seconds) DO NOTHING
;;
INSERT INTO schema_migrations (version, name, checksum)
	VALUES ($1, $2, $3)
;;
INSERT INTO services (tenant_id, id, name, definition)
	SELECT $1, $2, $3, $4::jsonb
	WHERE (SELECT count(*) FROM services WHERE tenant_id = $5) < $6
	RETURNING id, name, definition::text, created_at, updated_at
;;
INSERT INTO status_spans (tenant_id, target_id, state, started_at, cause)
	VALUES ($1, $2, $3,
	        'epoch'::timestamptz + $4 * interval '1 microsecond', $5)
	ON CONFLICT (tenant_id, target_id, started_at)
	DO UPDATE SET state = EXCLUDED.state, cause = EXCLUDED.cause, ended_at = NULL
;;
INSERT INTO status_spans (tenant_id, target_id, state, started_at, ended_at) VALUES
	    ($1, 'k-old', 'up', now() - interval '600 days', now() - interval '500 days'),
	    ($2, 'k-old', 'down', now() - interval '500 days', now() - interval '10 days'),
	    ($3, 'k-old', 'up', now() - interval '10 days', NULL)
;;
INSERT INTO status_spans (tenant_id, target_id, state, started_at, ended_at, cause)
	VALUES ($1, $2, $3, $4, $5, $6)
;;
INSERT INTO tenant_allowed_networks (tenant_id, network) VALUES ($1, $2)
	ON CONFLICT (tenant_id, network) DO NOTHING RETURNING 1::int4
;;
INSERT INTO tenants (id, name) VALUES ($1, $2)
;;
INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id
;;
INSERT INTO tenants (id, name) VALUES ($1, 'acme')
;;
INSERT INTO users (tenant_id, id, username, role, password_hash)
	VALUES ($1, $2, $3, $4, $5)
;;
INSERT INTO web_sessions (tenant_id, token_hash, user_id, csrf_token, expires_at)
	VALUES ($1, $2, $3, $4, now() + $5 * interval '1 second')
;;
SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint
;;
SELECT (extract(epoch FROM removed_at) * 1000000)::bigint FROM containers WHERE name = 'db'
;;
SELECT (extract(epoch FROM slot_at) * 1000)::int8, token, ok, http_status, figures::text, agent_id
	FROM check_results WHERE tenant_id = $1 ORDER BY slot_at
;;
SELECT (extract(epoch FROM started_at) * 1000000)::bigint FROM status_spans
	WHERE target_id = $1 AND ended_at IS NULL AND state = 'down' AND cause = 'exited with code 1'
;;
SELECT (extract(epoch FROM started_at) * 1000000)::bigint FROM status_spans
	WHERE target_id = $1 AND ended_at IS NULL AND state = 'up'
;;
SELECT (extract(epoch FROM started_at) * 1000000)::bigint FROM status_spans
	WHERE target_id = $1 AND state = 'down' AND ended_at IS NULL
;;
SELECT (extract(epoch FROM ts) * 1000)::bigint, cpu_total_ns, cpu_idle_ns, cpu_iowait_ns, net_rx_bytes,
	       net_tx_bytes, uptime_seconds
	FROM host_samples
	WHERE tenant_id = $1 AND agent_id = $2
	  AND ts < to_timestamp($3) AND ts > to_timestamp($4) - interval '1 hour'
	ORDER BY ts DESC LIMIT 1
;;
SELECT 1 FROM checks WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id FOR NO KEY UPDATE
;;
SELECT 1::int4 FROM checks WHERE tenant_id = $1 AND id = $2
;;
SELECT DISTINCT ON (agent_id) agent_id, ts, cpu_percent, cpu_count,
	       (memory_total_bytes - memory_available_bytes)::float8, memory_total_bytes::float8, d.disk_percent
	FROM host_samples CROSS JOIN LATERAL (
	    SELECT max(((f->>'size_bytes')::float8 - (f->>'free_bytes')::float8) * 100 / nullif((f->>'size_bytes')::float8, 0))
	           AS disk_percent
	    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(filesystems) = 'array' THEN filesystems ELSE '[]'::jsonb END) f) d
	WHERE tenant_id = $1 AND ts > now() - $2 * interval '1 second'
	ORDER BY agent_id, ts DESC
;;
SELECT DISTINCT ON (name) name, cpu_percent, coalesce(memory_working_set_bytes, memory_usage_bytes)::float8,
	       nullif(memory_limit_bytes, 0)::float8
	FROM container_samples
	WHERE tenant_id = $1 AND agent_id = $2 AND ts > now() - $3 * interval '1 second'
	ORDER BY name, ts DESC
;;
SELECT DISTINCT tenant_id FROM alert_rules
;;
SELECT a.id, a.hostname, COALESCE((SELECT s.state FROM status_spans s
	          WHERE s.tenant_id = a.tenant_id AND s.target_id = 'h-' || a.id::text AND s.ended_at IS NULL), 'unknown'), a.last_seen, a.agent_version,
	       a.containers_unavailable_reason, a.interval_seconds, a.clock_offset_ms, a.truncated_values,
	       a.duplicate_samples,
	       (SELECT count(*) FROM ingest_rejections r WHERE r.tenant_id = a.tenant_id AND r.agent_id = a.id),
	       a.dead_lettered_batches, a.clone_suspected
	FROM agents a
	WHERE a.tenant_id = $1 AND a.id = $2
;;
SELECT a.id, a.hostname, COALESCE((SELECT s.state FROM status_spans s
	          WHERE s.tenant_id = a.tenant_id AND s.target_id = 'h-' || a.id::text AND s.ended_at IS NULL), 'unknown'), a.last_seen, a.agent_version,
	       a.containers_unavailable_reason, a.interval_seconds, a.clock_offset_ms, a.truncated_values,
	       a.duplicate_samples,
	       (SELECT count(*) FROM ingest_rejections r WHERE r.tenant_id = a.tenant_id AND r.agent_id = a.id),
	       a.dead_lettered_batches, a.clone_suspected
	FROM agents a
	WHERE a.tenant_id = $1 AND a.revoked_at IS NULL ORDER BY a.hostname, a.id
;;
SELECT a.tenant_id, a.id, 2 * a.interval_seconds + $1,
	       greatest(a.committed_batch_ts_ms * 1000, (extract(epoch FROM s.started_at) * 1000000)::bigint)
	FROM agents a
	JOIN status_spans s ON s.tenant_id = a.tenant_id AND s.target_id = 'h-' || a.id::text
	                   AND s.ended_at IS NULL AND s.state = 'up'
	WHERE a.last_seen < now() - make_interval(secs => 2 * a.interval_seconds + $2)
	FOR UPDATE OF a SKIP LOCKED
;;
SELECT a.tenant_id, a.id, a.hostname, a.labels
	FROM leases l JOIN agents a ON l.key = 'agent:' || a.id::text
	WHERE starts_with(l.key, 'agent:') AND l.released_at IS NULL AND l.expires_at > statement_timestamp()
	  AND a.tenant_id = ANY($1::uuid[]) AND a.revoked_at IS NULL
;;
SELECT agent_id, '', (extract(epoch FROM ts) * 1000000)::int8, (d.disk_percent)::float8
	FROM host_samples CROSS JOIN LATERAL (
	    SELECT max(((f->>'size_bytes')::float8 - (f->>'free_bytes')::float8) * 100 / nullif((f->>'size_bytes')::float8, 0))
	           AS disk_percent
	    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(filesystems) = 'array' THEN filesystems ELSE '[]'::jsonb END) f) d
	WHERE tenant_id = $1 AND ts >= 'epoch'::timestamptz + $2 * interval '1 microsecond'
	  AND ts <= 'epoch'::timestamptz + $3 * interval '1 microsecond' AND agent_id = ANY($4::uuid[])
	ORDER BY ts
;;
SELECT agent_id, name FROM containers
	WHERE tenant_id = $1 AND labels @> $2::jsonb
	ORDER BY agent_id, name
;;
SELECT agent_id, name, action, (extract(epoch FROM ts) * 1000000)::int8 FROM container_events
	WHERE tenant_id = $1 AND ts >= 'epoch'::timestamptz + $2 * interval '1 microsecond'
	  AND ts <= 'epoch'::timestamptz + $3 * interval '1 microsecond'
	  AND (agent_id, name) IN (SELECT * FROM unnest($4::uuid[], $5::text[]))
	  AND ($6 AND action = 'start'
	       OR $7 AND (action = 'oom' OR (action = 'die' AND detail LIKE '%OOMKilled%')))
	ORDER BY ts LIMIT 100000
;;
SELECT agent_id, name, image, docker_id, state, health, health_output, exit_code, restart_count,
	       oom_killed, started_at, finished_at
	FROM containers
	WHERE tenant_id = $1 AND agent_id = $2 AND name = $3 ORDER BY agent_id, name
;;
SELECT agent_id, name, image, docker_id, state, health, health_output, exit_code, restart_count,
	       oom_killed, started_at, finished_at
	FROM containers
	WHERE tenant_id = $1 AND agent_id = $2 AND removed_at IS NULL ORDER BY agent_id, name
;;
SELECT agent_id, name, image, docker_id, state, health, health_output, exit_code, restart_count,
	       oom_killed, started_at, finished_at
	FROM containers
	WHERE tenant_id = $1 AND removed_at IS NULL ORDER BY agent_id, name
;;
SELECT avg(cpu_percent) FROM host_samples WHERE ts < date_trunc('hour', now()) - interval '2 hours'
;;
SELECT batch_seq, part, sqlstate, reason FROM ingest_rejections WHERE agent_id = $1 ORDER BY id
;;
SELECT c.agent_id, c.name FROM containers c
	JOIN unnest($1::uuid[], $2::text[]) AS wanted(agent_id, name)
	  ON c.agent_id = wanted.agent_id AND c.name = wanted.name
	WHERE c.tenant_id = $3
;;
SELECT c.agent_id, c.name FROM containers c JOIN agents a ON a.tenant_id = c.tenant_id AND a.id = c.agent_id
	WHERE c.tenant_id = $1 AND c.removed_at IS NULL AND a.revoked_at IS NULL ORDER BY c.agent_id, c.name
;;
SELECT c.id, c.paused, c.retries, (extract(epoch FROM statement_timestamp()) * 1000000)::bigint,
	       coalesce(array_agg(r.ok ORDER BY r.slot_at DESC) FILTER (WHERE r.slot_at IS NOT NULL), '{}'),
	       coalesce(array_agg((extract(epoch FROM r.ts) * 1000000)::bigint ORDER BY r.slot_at DESC)
	                FILTER (WHERE r.slot_at IS NOT NULL), '{}'),
	       coalesce(array_agg(r.error ORDER BY r.slot_at DESC) FILTER (WHERE r.slot_at IS NOT NULL), '{}')
	FROM checks c LEFT JOIN LATERAL (
	    SELECT slot_at, min(ts) AS ts,
	           count(*) FILTER (WHERE NOT ok) < coalesce((c.run_on->>'quorum')::int, 1) AS ok,
	           coalesce(min(error) FILTER (WHERE NOT ok), '') AS error
	    FROM check_results
	    WHERE tenant_id = c.tenant_id AND check_id = c.id
	    GROUP BY slot_at ORDER BY slot_at DESC LIMIT c.retries + 1
	) r ON true
	WHERE c.tenant_id = $1 AND c.id = ANY($2)
	GROUP BY c.id, c.paused, c.retries
;;
SELECT c.name, a.interval_seconds
	FROM containers c JOIN agents a ON a.tenant_id = c.tenant_id AND a.id = c.agent_id
	WHERE c.tenant_id = $1 AND c.agent_id = $2 AND c.name = $3
;;
SELECT c.name, s.ts_ms, s.docker_id, s.cpu_usage_ns,
	       s.net_rx_bytes, s.net_tx_bytes, s.block_read_bytes, s.block_write_bytes
	FROM containers c
	CROSS JOIN LATERAL (
	    SELECT (extract(epoch FROM ts) * 1000)::bigint AS ts_ms, docker_id, cpu_usage_ns,
	           net_rx_bytes, net_tx_bytes, block_read_bytes, block_write_bytes
	    FROM container_samples
	    WHERE tenant_id = c.tenant_id AND agent_id = c.agent_id AND name = c.name AND cpu_usage_ns IS NOT NULL
	      AND ts < to_timestamp($1)
	      AND ts > to_timestamp($2) - interval '1 day'
	    ORDER BY ts DESC
	    LIMIT 1
	) s
	WHERE c.tenant_id = $3 AND c.agent_id = $4
;;
SELECT c.tenant_id, c.id, c.type, c.target, c.interval_seconds, c.timeout_ms, c.run_on::text, c.options::text,
	       d.slot_at, l.holder, l.token, s.token
	FROM checks c
	CROSS JOIN LATERAL (
	    SELECT to_timestamp(floor(extract(epoch FROM statement_timestamp()) / c.interval_seconds)
	                        * c.interval_seconds) AS slot_at
	) d
	LEFT JOIN leases l ON l.key = 'check:' || c.id::text AND l.released_at IS NULL
	    AND l.expires_at > statement_timestamp()
	LEFT JOIN check_slots s ON s.tenant_id = c.tenant_id AND s.check_id = c.id AND s.slot_at = d.slot_at
	    AND s.member = $1
	WHERE NOT c.paused AND c.type <> 'push' AND c.run_on->>'mode' <> 'all'
	  AND (($2 AND c.run_on->>'mode' <> 'server' AND c.tenant_id = ANY($3::uuid[]))
	       OR ($4 AND c.run_on->>'mode' = 'server'))
	  AND (l.key IS NULL OR l.holder = ANY($5::text[]))
	  AND (s.token IS NULL OR l.key IS NULL OR s.token < l.token)
	  AND NOT EXISTS (SELECT 1 FROM check_results r
	                  WHERE r.tenant_id = c.tenant_id AND r.check_id = c.id AND r.slot_at = d.slot_at)
	ORDER BY d.slot_at, c.id
	LIMIT $6
;;
SELECT c.tenant_id, c.id, c.type, c.target, c.interval_seconds, c.timeout_ms, c.run_on::text, c.options::text,
	       d.slot_at, l.holder, l.token, s.token, a.agent_id
	FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS a(tenant_id, agent_id, holder)
	JOIN checks c ON c.tenant_id = a.tenant_id AND c.run_on->>'mode' = 'all' AND NOT c.paused
	CROSS JOIN LATERAL (
	    SELECT to_timestamp(floor(extract(epoch FROM statement_timestamp()) / c.interval_seconds)
	                        * c.interval_seconds) AS slot_at
	) d
	LEFT JOIN leases l ON l.key = 'check:' || c.id::text || ':' || a.agent_id::text AND l.released_at IS NULL
	    AND l.expires_at > statement_timestamp()
	LEFT JOIN check_slots s ON s.tenant_id = c.tenant_id AND s.check_id = c.id AND s.slot_at = d.slot_at
	    AND s.member = a.agent_id
	WHERE (l.key IS NULL OR l.holder = a.holder)
	  AND (s.token IS NULL OR l.key IS NULL OR s.token < l.token)
	  AND NOT EXISTS (SELECT 1 FROM check_results r
	                  WHERE r.tenant_id = c.tenant_id AND r.check_id = c.id AND r.slot_at = d.slot_at
	                    AND r.member = a.agent_id)
	ORDER BY d.slot_at, c.id, a.agent_id
	LIMIT $4
;;
SELECT cause FROM status_spans WHERE state = 'unknown'
;;
SELECT certificate_pem, sealed_private_key, secret_fingerprint, pin FROM certificate_authority WHERE id = 1
;;
SELECT check_id, '', (extract(epoch FROM ts) * 1000000)::int8, (CASE WHEN jsonb_typeof(figures->'replication_lag_seconds') = 'number' THEN (figures->>'replication_lag_seconds')::float8 END)::float8
	FROM check_results
	WHERE tenant_id = $1 AND slot_at >= 'epoch'::timestamptz + $2 * interval '1 microsecond' - interval '1 day'
	  AND ts >= 'epoch'::timestamptz + $2 * interval '1 microsecond'
	  AND ts <= 'epoch'::timestamptz + $3 * interval '1 microsecond' AND check_id = ANY($4::uuid[])
	ORDER BY ts
;;
SELECT check_id, '', (extract(epoch FROM ts) * 1000000)::int8, (extract(epoch FROM cert_not_after - ts) / 86400)::float8
	FROM check_results
	WHERE tenant_id = $1 AND slot_at >= 'epoch'::timestamptz + $2 * interval '1 microsecond' - interval '1 day'
	  AND ts >= 'epoch'::timestamptz + $2 * interval '1 microsecond'
	  AND ts <= 'epoch'::timestamptz + $3 * interval '1 microsecond' AND check_id = ANY($4::uuid[])
	ORDER BY ts
;;
SELECT check_id, (extract(epoch FROM slot_at) * 1000)::int8, token, agent_id FROM check_slots ORDER BY 1, 2
;;
SELECT check_id, ok, error FROM check_results WHERE runner = 'push' AND NOT ok
;;
SELECT check_id, runner, agent_id IS NULL, ok, error, count(*) OVER (PARTITION BY check_id) FROM check_results
;;
SELECT clock_offset_ms FROM agents WHERE id = $1
;;
SELECT clone_suspected::int FROM agents WHERE id = $1
;;
SELECT committed_seq FROM agents WHERE id = $1
;;
SELECT committed_seq FROM agents WHERE tenant_id = $1 AND id = $2 FOR UPDATE
;;
SELECT containers_unavailable_reason FROM agents WHERE id = $1
;;
SELECT count(*) FROM agents
;;
SELECT count(*) FROM agents WHERE id = $1 AND certificate_serial = $2
;;
SELECT count(*) FROM agents WHERE id = $1 AND last_seen IS NOT NULL AND boot_id = 'boot-1'
;;
SELECT count(*) FROM agents WHERE id = $1 AND tenant_id = $2 AND hostname = 'new-host'
;;
SELECT count(*) FROM agents WHERE last_seen IS NOT NULL
;;
SELECT count(*) FROM agents WHERE tenant_id = $1
;;
SELECT count(*) FROM alert_notifications WHERE delivered_at IS NOT NULL
;;
SELECT count(*) FROM check_results WHERE check_id = '331BE330-F045-43F6-BAA9-0EDC36DF0950'
;;
SELECT count(*) FROM check_results WHERE check_id = 'D11B5101-6F48-44BD-942F-E08F94D3F979'
;;
SELECT count(*) FROM check_results WHERE token = 103 AND ts = slot_at AND cert_not_after IS NULL
;;
SELECT count(*) FROM checks
;;
SELECT count(*) FROM container_events
;;
SELECT count(*) FROM container_events WHERE name = 'web'
;;
SELECT count(*) FROM container_samples
;;
SELECT count(*) FROM container_samples WHERE agent_id = $1
;;
SELECT count(*) FROM container_samples WHERE name = 'db'
;;
SELECT count(*) FROM container_samples WHERE name = 'web'
;;
SELECT count(*) FROM container_samples WHERE ts = to_timestamp($1)
;;
SELECT count(*) FROM containers
;;
SELECT count(*) FROM containers WHERE health = 'unhealthy' AND health_output = $1
;;
SELECT count(*) FROM containers WHERE name = 'intruder'
;;
SELECT count(*) FROM containers WHERE name = 'nul' AND labels = '{"ab": "cd"}'::jsonb
;;
SELECT count(*) FROM containers WHERE name = 'other'
;;
SELECT count(*) FROM containers WHERE name = 'web' AND removed_at IS NULL
;;
SELECT count(*) FROM containers WHERE octet_length(name) = $1
;;
SELECT count(*) FROM containers WHERE removed_at IS NOT NULL
;;
SELECT count(*) FROM containers WHERE started_at IS NULL AND finished_at IS NULL
;;
SELECT count(*) FROM containers WHERE state = 'exited'
;;
SELECT count(*) FROM enrollment_tokens WHERE used_at IS NULL
;;
SELECT count(*) FROM host_samples
;;
SELECT count(*) FROM ingest_rejections
;;
SELECT count(*) FROM ingest_rejections WHERE agent_id = $1 AND batch_seq = 2
;;
SELECT count(*) FROM lease_counters
;;
SELECT count(*) FROM leases
;;
SELECT count(*) FROM leases WHERE key = $1 AND released_at IS NOT NULL
;;
SELECT count(*) FROM leases WHERE key = 'job:tokens'
;;
SELECT count(*) FROM status_spans
;;
SELECT count(*) FROM status_spans WHERE state = 'down'
;;
SELECT count(*) FROM status_spans WHERE state = 'down' AND ended_at IS NULL
;;
SELECT count(*) FROM status_spans WHERE target_id = 'k-4dc1175c-409f-4c23-a16e-12cef785ed20'
;;
SELECT count(*) FROM status_spans WHERE target_id NOT LIKE 'h-%'
;;
SELECT count(*) FROM web_sessions
;;
SELECT count(*)::float8 FROM metric_rollups WHERE target_id = 'h-1d65f45e-b9b5-4236-af29-90e0acfa7f0b' AND step_seconds = 300
;;
SELECT count(*)::float8 FROM metric_rollups WHERE target_id = 'h-1d65f45e-b9b5-4236-af29-90e0acfa7f0b' AND step_seconds = 3600
;;
SELECT count(*)::text || ' ' || bool_and(stored_at IS NOT NULL)::text FROM container_events
;;
SELECT count(cpu_percent) FROM container_samples WHERE name = 'web'
;;
SELECT cpu_avg FROM metric_rollups WHERE target_id = 'h-1d65f45e-b9b5-4236-af29-90e0acfa7f0b' AND step_seconds = 3600 ORDER BY bucket LIMIT 1
;;
SELECT cpu_max FROM metric_rollups WHERE target_id = 'h-1d65f45e-b9b5-4236-af29-90e0acfa7f0b' AND step_seconds = 300 ORDER BY bucket LIMIT 1
;;
SELECT cpu_percent FROM container_samples WHERE agent_id = $1 ORDER BY ts
;;
SELECT cpu_percent FROM host_samples WHERE agent_id = $1 ORDER BY ts
;;
SELECT cpu_percent, net_rx_bytes_per_second, net_tx_bytes_per_second FROM host_samples
	WHERE agent_id = $1 ORDER BY ts
;;
SELECT cpu_percent, net_rx_bytes_per_second, net_tx_bytes_per_second, block_read_bytes_per_second,
	       block_write_bytes_per_second
	FROM container_samples WHERE agent_id = $1 AND name = 'web' ORDER BY ts
;;
SELECT cpu_percent::bigint FROM container_samples WHERE agent_id = $1 ORDER BY ts DESC LIMIT 1
;;
SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), current_setting('application_name')
;;
SELECT date_bin(make_interval(secs => $1), ts, 'epoch') AS bucket, avg(load1)::float8,
	       avg(swap_total_bytes - swap_free_bytes)::float8
	FROM host_samples
	WHERE tenant_id = $2 AND agent_id = $3 AND ts >= $4 AND ts < $5
	GROUP BY bucket ORDER BY bucket
;;
SELECT date_bin(make_interval(secs => $1), ts, timestamptz '1970-01-01 00:00:00+00') AS bucket,
	       avg(cpu_percent)::float8,
	       avg(coalesce(memory_working_set_bytes, memory_usage_bytes))::float8,
	       avg(nullif(memory_limit_bytes, 0))::float8,
	       avg(net_rx_bytes_per_second)::float8,
	       avg(net_tx_bytes_per_second)::float8,
	       avg(block_read_bytes_per_second)::float8,
	       avg(block_write_bytes_per_second)::float8,
	       avg(pids)::float8
	FROM container_samples
	WHERE tenant_id = $2 AND agent_id = $3 AND name = $4
	  AND ts >= $5 AND ts <= $6
	GROUP BY bucket ORDER BY bucket
;;
SELECT date_bin(make_interval(secs => $1), ts, timestamptz '1970-01-01 00:00:00+00') AS bucket,
	       avg(cpu_percent)::float8,
	       avg(memory_total_bytes - memory_available_bytes)::float8,
	       avg(memory_total_bytes)::float8,
	       avg(net_rx_bytes_per_second)::float8,
	       avg(net_tx_bytes_per_second)::float8,
	       NULL::float8, NULL::float8, NULL::float8
	FROM host_samples
	WHERE tenant_id = $2 AND agent_id = $3
	  AND ts >= $4 AND ts <= $5
	GROUP BY bucket ORDER BY bucket
;;
SELECT date_bin(make_interval(secs => $1), ts, timestamptz '1970-01-01 00:00:00+00') AS bucket,
	       max(cpu_percent)::float8,
	       max(coalesce(memory_working_set_bytes, memory_usage_bytes))::float8,
	       max(nullif(memory_limit_bytes, 0))::float8,
	       max(net_rx_bytes_per_second)::float8,
	       max(net_tx_bytes_per_second)::float8,
	       max(block_read_bytes_per_second)::float8,
	       max(block_write_bytes_per_second)::float8,
	       max(pids)::float8
	FROM container_samples
	WHERE tenant_id = $2 AND agent_id = $3 AND name = $4
	  AND ts >= $5 AND ts <= $6
	GROUP BY bucket ORDER BY bucket
;;
SELECT date_bin(make_interval(secs => $1), ts, timestamptz '1970-01-01 00:00:00+00') AS bucket,
	       min(cpu_percent)::float8,
	       min(coalesce(memory_working_set_bytes, memory_usage_bytes))::float8,
	       min(nullif(memory_limit_bytes, 0))::float8,
	       min(net_rx_bytes_per_second)::float8,
	       min(net_tx_bytes_per_second)::float8,
	       min(block_read_bytes_per_second)::float8,
	       min(block_write_bytes_per_second)::float8,
	       min(pids)::float8
	FROM container_samples
	WHERE tenant_id = $2 AND agent_id = $3 AND name = $4
	  AND ts >= $5 AND ts <= $6
	GROUP BY bucket ORDER BY bucket
;;
SELECT duplicate_samples FROM agents WHERE id = $1
;;
SELECT encode(sealed, 'escape') FROM alert_channels
;;
SELECT exit_code FROM containers WHERE name = 'db'
;;
SELECT health, labels->>'com.docker.compose.service', image FROM containers WHERE name = 'db'
;;
SELECT holder, token, acquired_at, expires_at FROM leases
	WHERE key = $1 AND released_at IS NULL AND expires_at > statement_timestamp()
;;
SELECT hostname, committed_seq FROM agents WHERE tenant_id = $1 AND id = $2
;;
SELECT id FROM alert_channels WHERE tenant_id = $1 AND id = ANY($2)
;;
SELECT id FROM tenants WHERE name = $1
;;
SELECT id, hostname FROM agents WHERE tenant_id = $1 AND id = ANY($2)
;;
SELECT id, hostname FROM agents WHERE tenant_id = $1 AND labels @> $2::text[] ORDER BY id
;;
SELECT id, hostname FROM agents WHERE tenant_id = $1 AND revoked_at IS NULL ORDER BY hostname, id
;;
SELECT id, name FROM checks WHERE tenant_id = $1 AND id = ANY($2)
;;
SELECT id, name, CASE WHEN public_target THEN target END FROM checks
	WHERE tenant_id = $1 AND public ORDER BY name, id
;;
SELECT id, name, definition::text, created_at, updated_at FROM alert_rules
	WHERE tenant_id = $1 AND id = $2
;;
SELECT id, name, definition::text, created_at, updated_at FROM alert_rules
	WHERE tenant_id = $1 ORDER BY name, id
;;
SELECT id, name, definition::text, created_at, updated_at FROM maintenance_windows
	WHERE tenant_id = $1 AND id = $2
;;
SELECT id, name, definition::text, created_at, updated_at FROM maintenance_windows
	WHERE tenant_id = $1 ORDER BY name, id
;;
SELECT id, name, definition::text, created_at, updated_at FROM services
	WHERE tenant_id = $1 AND id = $2
;;
SELECT id, name, definition::text, created_at, updated_at FROM services
	WHERE tenant_id = $1 ORDER BY name, id
;;
SELECT id, name, paused FROM checks WHERE tenant_id = $1 ORDER BY name, id
;;
SELECT id, name, status_title, time_zone FROM tenants WHERE status_slug = $1
;;
SELECT id, name, type, destination, created_at FROM alert_channels WHERE tenant_id = $1 AND id = $2
;;
SELECT id, name, type, destination, created_at FROM alert_channels WHERE tenant_id = $1 ORDER BY name, id
;;
SELECT id, repost_seconds FROM alert_channels WHERE tenant_id = $1 AND repost_seconds IS NOT NULL
;;
SELECT id, role, created_at, expires_at, revoked_at FROM api_keys
	WHERE tenant_id = $1 ORDER BY created_at DESC, id
;;
SELECT id, rule_id, channel_id, target_id, kind, payload::text, created_at, attempts, delivered_at, failed_at, last_error
	FROM alert_notifications
	WHERE tenant_id = $1 AND ($2::uuid IS NULL OR rule_id = $3)
	  AND ($4::uuid IS NULL OR channel_id = $5)
	ORDER BY created_at DESC, id LIMIT $6
;;
SELECT id, rule_id, target_id, ends_at, comment, created_by, created_at FROM alert_silences
	WHERE tenant_id = $1 AND ends_at > now() - $2 * interval '1 day' ORDER BY ends_at DESC, id LIMIT 2000
;;
SELECT id, rule_id, target_id, ends_at, comment, created_by, created_at FROM alert_silences
	WHERE tenant_id = $1 AND ends_at > now() ORDER BY ends_at, id
;;
SELECT id, username, role, created_at, disabled_at IS NOT NULL FROM users WHERE tenant_id = $1
	ORDER BY lower(username)
;;
SELECT jsonb_array_length(filesystems)::bigint FROM host_samples WHERE agent_id = $1
;;
SELECT key, holder, token, acquired_at, expires_at FROM leases
	WHERE starts_with(key, $1) AND released_at IS NULL AND expires_at > statement_timestamp()
	ORDER BY key
;;
SELECT key_hash, role FROM api_keys WHERE tenant_id = $1 AND id = $2
;;
SELECT l.key, l.value FROM containers c CROSS JOIN LATERAL jsonb_each_text(
	    CASE WHEN jsonb_typeof(c.labels) = 'object' THEN c.labels ELSE '{}'::jsonb END) AS l(key, value)
	WHERE c.tenant_id = $1 AND c.agent_id = $2 AND c.name = $3
	ORDER BY l.key
;;
SELECT labels FROM agents WHERE id = $1
;;
SELECT labels->>'fx.role', state FROM containers WHERE name = 'fx-labelled'
;;
SELECT left(s.target_id, 1), s.state, (extract(epoch FROM sum(greatest(interval '0', least(s.ended_at, $3) - greatest(s.started_at, $5)))) * 1000000)::int8, (extract(epoch FROM sum(greatest(interval '0', least(s.ended_at, $3) - greatest(s.started_at, $6)))) * 1000000)::int8
	FROM status_spans s WHERE s.tenant_id = $1 AND s.target_id = ANY($2) AND s.started_at < $3 AND (s.ended_at IS NULL OR s.ended_at > $4) GROUP BY 1, 2
;;
SELECT left(s.target_id, 1), s.state, (extract(epoch FROM sum(greatest(interval '0', least(s.ended_at, $3, m.e) - greatest(s.started_at, $5, m.s)))) * 1000000)::int8, (extract(epoch FROM sum(greatest(interval '0', least(s.ended_at, $3, m.e) - greatest(s.started_at, $6, m.s)))) * 1000000)::int8
	FROM status_spans s JOIN unnest($7::timestamptz[], $8::timestamptz[]) AS m(s, e)
	  ON s.started_at < m.e AND (s.ended_at IS NULL OR s.ended_at > m.s)
	WHERE s.tenant_id = $1 AND s.target_id = ANY($2) AND s.started_at < $3 AND (s.ended_at IS NULL OR s.ended_at > $4) GROUP BY 1, 2
;;
SELECT max(disk_max) FROM metric_rollups WHERE target_id = 'h-1d65f45e-b9b5-4236-af29-90e0acfa7f0b'
;;
SELECT name FROM containers WHERE agent_id = $1 AND removed_at IS NULL ORDER BY name
;;
SELECT name || ' ' || action FROM container_events ORDER BY ts
;;
SELECT name, date_bin(make_interval(secs => $1), ts, 'epoch') AS bucket, avg(cpu_percent)::float8
	FROM container_samples
	WHERE tenant_id = $2 AND agent_id = $3 AND ts >= $4
	GROUP BY name, bucket ORDER BY name, bucket
;;
SELECT name, interval_seconds FROM checks WHERE tenant_id = $1 AND id = $2
;;
SELECT name, labels::text, image, health_output FROM containers WHERE agent_id = $1
;;
SELECT name, octet_length(labels::text) FROM containers WHERE agent_id = $1 ORDER BY name
;;
SELECT name, time_zone FROM tenants WHERE id = $1
;;
SELECT name, xmin::text FROM containers
;;
SELECT network FROM tenant_allowed_networks WHERE tenant_id = $1 ORDER BY network
;;
SELECT password_hash FROM users WHERE id = $1
;;
SELECT pg_advisory_lock($1)
;;
SELECT pg_advisory_lock(7001001)
;;
SELECT pg_advisory_unlock($1)
;;
SELECT pg_advisory_unlock(7001001)
;;
SELECT pg_advisory_xact_lock(7001002)
;;
SELECT pg_sleep(0.3)
;;
SELECT pg_sleep(5)
;;
SELECT pin FROM certificate_authority WHERE id = 1
;;
SELECT rolled_through,
	       least(date_bin(make_interval(secs => $1), now() - $2 * interval '1 second', 'epoch'),
	             rolled_through + $3 * interval '1 second')
	FROM rollup_progress WHERE step_seconds = $4 FOR UPDATE
;;
SELECT rule_id, target_id, status, (extract(epoch FROM active_since) * 1000000)::int8,
	       (extract(epoch FROM notified_at) * 1000000)::int8, rule_version,
	       (extract(epoch FROM announced_at) * 1000000)::int8, (extract(epoch FROM acknowledged_at) * 1000000)::int8,
	       (extract(epoch FROM escalated_at) * 1000000)::int8, (extract(epoch FROM refreshed_at) * 1000000)::int8
	FROM alert_states WHERE tenant_id = $1
;;
SELECT rule_id, target_id, status, active_since, announced_at, acknowledged_at, acknowledged_by, escalated_at
	FROM alert_states WHERE tenant_id = $1 ORDER BY notified_at DESC, rule_id, target_id LIMIT 5000
;;
SELECT s.agent_id, s.name, (extract(epoch FROM s.ts) * 1000000)::int8, (coalesce(s.memory_working_set_bytes, s.memory_usage_bytes)::float8 * 100 / nullif(s.memory_limit_bytes, 0))::float8
	FROM container_samples s
	JOIN containers c ON c.tenant_id = s.tenant_id AND c.agent_id = s.agent_id AND c.name = s.name
	WHERE s.tenant_id = $1 AND s.ts >= 'epoch'::timestamptz + $2 * interval '1 microsecond'
	  AND s.ts <= 'epoch'::timestamptz + $3 * interval '1 microsecond'
	  AND (s.agent_id, s.name) IN (SELECT * FROM unnest($4::uuid[], $5::text[]))
	ORDER BY s.ts
;;
SELECT s.agent_id, s.name, (extract(epoch FROM s.ts) * 1000000)::int8, (s.cpu_percent)::float8
	FROM container_samples s
	JOIN containers c ON c.tenant_id = s.tenant_id AND c.agent_id = s.agent_id AND c.name = s.name
	WHERE s.tenant_id = $1 AND s.ts >= 'epoch'::timestamptz + $2 * interval '1 microsecond'
	  AND s.ts <= 'epoch'::timestamptz + $3 * interval '1 microsecond'
	  AND (s.agent_id, s.name) IN (SELECT * FROM unnest($4::uuid[], $5::text[]))
	ORDER BY s.ts
;;
SELECT samples::float8 FROM metric_rollups WHERE target_id = 'h-1d65f45e-b9b5-4236-af29-90e0acfa7f0b' AND step_seconds = 3600 ORDER BY bucket LIMIT 1
;;
SELECT sealed_private_key FROM certificate_authority
;;
SELECT session_id = $1, revoked_at IS NOT NULL FROM agents WHERE tenant_id = $2 AND id = $3
;;
SELECT slot_at, ts, agent_id, runner, ok, latency_ms, error, http_status, cert_not_after, figures::text
	FROM check_results WHERE tenant_id = $1 AND check_id = $2 AND slot_at >= $3 AND slot_at <= $4 ORDER BY slot_at DESC LIMIT $5
;;
SELECT slot_at, ts, agent_id, runner, ok, latency_ms, error, http_status, cert_not_after, figures::text
	FROM check_results WHERE tenant_id = $1 AND check_id = $2 AND slot_at >= $3 ORDER BY slot_at DESC LIMIT $4
;;
SELECT slot_at, ts, agent_id, runner, ok, latency_ms, error, http_status, cert_not_after, figures::text
	FROM check_results WHERE tenant_id = $1 AND check_id = $2 ORDER BY slot_at DESC LIMIT $3
;;
SELECT spool_dropped_batches FROM agents WHERE id = $1
;;
SELECT state FROM containers WHERE name = 'fx-exited'
;;
SELECT state FROM status_spans
	WHERE tenant_id = $1 AND target_id = $2 AND ended_at IS NULL
;;
SELECT state || CASE WHEN ended_at IS NULL THEN ' open' ELSE '' END || CASE WHEN cause = '' THEN '' ELSE ': ' || cause END
	FROM status_spans WHERE tenant_id = $1 AND target_id = $2 ORDER BY started_at
;;
SELECT state, (extract(epoch FROM started_at) * 1000)::bigint, (extract(epoch FROM ended_at) * 1000)::bigint
	FROM status_spans WHERE target_id = $1 ORDER BY started_at
;;
SELECT state, (extract(epoch FROM started_at) * 1000000)::bigint,
	       (extract(epoch FROM ended_at) * 1000000)::bigint, cause
	FROM status_spans WHERE target_id = $1 ORDER BY started_at
;;
SELECT state, started_at, ended_at, cause
	FROM status_spans
	WHERE tenant_id = $1 AND target_id = $2
	ORDER BY started_at DESC
	LIMIT $3
;;
SELECT status_slug, status_title FROM tenants WHERE id = $1
;;
SELECT string_agg(kind, ',' ORDER BY created_at, kind) FROM alert_notifications
;;
SELECT t.id, s.state, (extract(epoch FROM s.started_at) * 1000000)::int8, (extract(epoch FROM s.ended_at) * 1000000)::int8,
	       s.cause
	FROM unnest($1::text[]) AS t(id)
	CROSS JOIN LATERAL (SELECT state, started_at, ended_at, cause FROM status_spans
	                    WHERE tenant_id = $2 AND target_id = t.id ORDER BY started_at DESC LIMIT 1) s
;;
SELECT tableoid::regclass::text FROM check_results
;;
SELECT tableoid::regclass::text, (extract(epoch FROM ts) * 1000)::bigint FROM container_samples
	UNION ALL SELECT tableoid::regclass::text, (extract(epoch FROM ts) * 1000)::bigint FROM host_samples
	ORDER BY 1
;;
SELECT target_id,
	       array_agg(state ORDER BY started_at),
	       array_agg((extract(epoch FROM started_at) * 1000000)::bigint ORDER BY started_at),
	       array_agg(coalesce((extract(epoch FROM ended_at) * 1000000)::bigint, -1) ORDER BY started_at),
	       array_agg(cause ORDER BY started_at)
	FROM status_spans
	WHERE tenant_id = $1 AND target_id = ANY($2)
	  AND started_at < 'epoch'::timestamptz + $3 * interval '1 microsecond'
	  AND (ended_at IS NULL OR ended_at > 'epoch'::timestamptz + $4 * interval '1 microsecond')
	GROUP BY target_id
;;
SELECT target_id, state, (extract(epoch FROM started_at) * 1000000)::bigint
	FROM status_spans WHERE tenant_id = $1 AND target_id = ANY($2) AND ended_at IS NULL
;;
SELECT target_id, state, cause FROM status_spans WHERE ended_at IS NULL ORDER BY target_id
;;
SELECT tenant_id FROM services WHERE id = $1
;;
SELECT tenant_id, id, role FROM api_keys
	WHERE key_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
;;
SELECT tenant_id, id, username, role, password_hash FROM users
	WHERE lower(username) = lower($1) AND disabled_at IS NULL
;;
SELECT tenant_id, name, CASE WHEN public_target THEN target END FROM checks WHERE id = $1 AND public
;;
SELECT token FROM leases WHERE key = $1 FOR NO KEY UPDATE
;;
SELECT token, released_at IS NOT NULL, expires_at > statement_timestamp(), expires_at
	FROM leases WHERE key = $1 FOR SHARE
;;
SELECT truncated_values FROM agents WHERE id = $1
;;
SELECT ts, action, detail, exit_code
	FROM container_events
	WHERE tenant_id = $1 AND agent_id = $2 AND name = $3
	  AND (action = ANY($4) OR action LIKE 'health_status%')
	ORDER BY ts DESC, action
	LIMIT $5
;;
SELECT ts, cpu_percent, (memory_total_bytes - memory_available_bytes)::float8,
	       memory_total_bytes::float8, net_rx_bytes_per_second, net_tx_bytes_per_second,
	       NULL::float8, NULL::float8, NULL::float8
	FROM host_samples
	WHERE tenant_id = $1 AND agent_id = $2
	ORDER BY ts DESC LIMIT 1
;;
SELECT ts, cpu_percent, coalesce(memory_working_set_bytes, memory_usage_bytes)::float8,
	       nullif(memory_limit_bytes, 0)::float8, net_rx_bytes_per_second, net_tx_bytes_per_second,
	       block_read_bytes_per_second, block_write_bytes_per_second, pids::float8
	FROM container_samples
	WHERE tenant_id = $1 AND agent_id = $2 AND name = $3
	ORDER BY ts DESC LIMIT 1
;;
SELECT type, sealed FROM alert_channels WHERE tenant_id = $1 AND id = $2
;;
SELECT u.tenant_id, u.id, u.username, u.role, s.csrf_token, t.name
	FROM web_sessions s JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
	JOIN tenants t ON t.id = u.tenant_id
	WHERE s.token_hash = $1 AND s.expires_at > now() AND u.disabled_at IS NULL
;;
SELECT value FROM lease_counters WHERE key = $1
;;
SELECT version, name, checksum FROM schema_migrations ORDER BY version
;;
SELECT version::text FROM schema_migrations ORDER BY version
;;
SELECT version::text || ' ' || name || ' ' || checksum FROM schema_migrations ORDER BY version
;;
UPDATE agents SET certificate_serial = $1 WHERE tenant_id = $2 AND id = $3
;;
UPDATE agents SET clock_offset_ms = $1 WHERE tenant_id = $2 AND id = $3
;;
UPDATE agents SET committed_seq = $1, committed_batch_ts_ms = $2, last_seen = now(),
	    spool_dropped_batches = spool_dropped_batches + $3,
	    truncated_values = truncated_values + $4,
	    duplicate_samples = duplicate_samples + $5,
	    dead_lettered_batches = dead_lettered_batches + $6,
	    containers_unavailable_reason = $7,
	    interval_seconds = $8
	WHERE tenant_id = $9 AND id = $10
;;
UPDATE agents SET hostname = $1, agent_version = $2, os = $3,
	    kernel = $4, architecture = $5, cpu_count = $6,
	    memory_total_bytes = $7, docker_version = $8,
	    boot_id = $9, last_seen = now(), clock_offset_ms = $10,
	    labels = $11,
	    session_id = CASE WHEN revoked_at IS NULL THEN $12 ELSE session_id END,
	    recent_boot_ids = (array_append(recent_boot_ids, $13))[greatest(1, cardinality(recent_boot_ids) - 6):cardinality(recent_boot_ids) + 1],
	    -- The last four sessions, this one included, alternated between two boot ids (A B A B): one host
	    -- rebooting cannot do that, two hosts sharing this identity (a cloned VM) do.
	    clone_suspected = clone_suspected OR ($14 <> '' AND cardinality(recent_boot_ids) >= 3
	        AND recent_boot_ids[cardinality(recent_boot_ids) - 2] = recent_boot_ids[cardinality(recent_boot_ids)]
	        AND recent_boot_ids[cardinality(recent_boot_ids) - 1] = $15
	        AND recent_boot_ids[cardinality(recent_boot_ids)] <> $16)
	WHERE tenant_id = $17 AND id = $18 AND revoked_at IS NULL
	RETURNING hostname, committed_seq, revoked_at IS NOT NULL, clone_suspected, committed_batch_ts_ms
;;
UPDATE agents SET last_seen = now() - $1 * interval '1 second' WHERE id = $2
;;
UPDATE agents SET revoked_at = now() WHERE id = $1
;;
UPDATE agents SET revoked_at = now(), session_id = NULL WHERE id = $1 AND revoked_at IS NULL RETURNING id
;;
UPDATE agents SET session_id = $1 WHERE id = $2
;;
UPDATE agents SET session_id = $1, labels = $2 WHERE id = $3
;;
UPDATE alert_notifications SET delivered_at = now(), claimed_until = NULL, last_error = ''
	WHERE tenant_id = $1 AND id = $2
;;
UPDATE alert_notifications SET failed_at = now(), claimed_until = NULL, last_error = $1
	WHERE tenant_id = $2 AND id = $3
;;
UPDATE alert_notifications SET next_attempt_at = now() + $1 * interval '1 second', claimed_until = NULL,
	    last_error = $2
	WHERE tenant_id = $3 AND id = $4
;;
UPDATE alert_notifications SET next_attempt_at = now() WHERE delivered_at IS NULL
;;
UPDATE alert_notifications SET next_attempt_at = now() WHERE id = $1
;;
UPDATE alert_notifications n
	SET claimed_until = now() + $1 * interval '1 second', attempts = n.attempts + 1
	FROM (SELECT d.tenant_id, d.id FROM alert_notifications d
	      WHERE d.delivered_at IS NULL AND d.failed_at IS NULL AND d.next_attempt_at <= now()
	        AND (d.claimed_until IS NULL OR d.claimed_until < now())
	        -- In order per channel, rule and target: a recovery never overtakes its firing in a retry.
	        AND NOT EXISTS (SELECT 1 FROM alert_notifications o
	                        WHERE o.tenant_id = d.tenant_id AND o.channel_id = d.channel_id AND o.rule_id = d.rule_id
	                          AND o.target_id = d.target_id AND o.delivered_at IS NULL AND o.failed_at IS NULL
	                          AND (o.created_at, o.id) < (d.created_at, d.id))
	      ORDER BY d.next_attempt_at LIMIT $2 FOR UPDATE OF d SKIP LOCKED) due
	WHERE n.tenant_id = due.tenant_id AND n.id = due.id
	RETURNING n.id, n.tenant_id, n.channel_id, n.payload::text, n.attempts
;;
UPDATE alert_rules SET name = $1, definition = $2::jsonb, updated_at = now()
	WHERE tenant_id = $3 AND id = $4
	RETURNING id, name, definition::text, created_at, updated_at
;;
UPDATE alert_silences SET ends_at = now() WHERE tenant_id = $1 AND id = $2 AND ends_at > now() RETURNING id
;;
UPDATE alert_states SET acknowledged_at = coalesce(acknowledged_at, now()), acknowledged_by = coalesce(acknowledged_by, $1)
	WHERE tenant_id = $2 AND rule_id = $3 AND target_id = $4
	RETURNING rule_id, target_id, status, active_since, announced_at, acknowledged_at, acknowledged_by, escalated_at
;;
UPDATE alert_states SET announced_at = notified_at
;;
UPDATE api_keys SET revoked_at = now()
	WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL
	RETURNING id
;;
UPDATE containers SET labels = '{"com.docker.compose.project":"shop"}' WHERE name IN ('web', 'db')
;;
UPDATE containers SET labels = jsonb_build_object('evil', '"><img src=x onerror=alert(3)>', 'com.docker.compose.project', 'shop')
	WHERE agent_id = $1 AND name = $2
;;
UPDATE containers SET removed_at = to_timestamp($1)
	WHERE tenant_id = $2 AND agent_id = $3 AND removed_at IS NULL
	  AND NOT (name = ANY($4))
;;
UPDATE enrollment_tokens SET used_at = now(), used_by = $1, uses = uses + 1
	WHERE token_hash = $2 AND uses < uses_allowed AND expires_at > now()
	RETURNING tenant_id
;;
UPDATE enrollment_tokens SET uses = 1 WHERE used_at IS NOT NULL
;;
UPDATE host_samples SET filesystems = '[{"mount":"/","size_bytes":1000,"free_bytes":30},{"mount":"/boot","size_bytes":100,"free_bytes":90}]'
	WHERE tenant_id = $1
;;
UPDATE host_samples SET load1 = 1.5, swap_total_bytes = 1073741824, swap_free_bytes = 805306368 WHERE agent_id = $1
;;
UPDATE lease_counters SET value = $1 WHERE key = $2
;;
UPDATE leases SET expires_at = statement_timestamp() + $1 * interval '1 millisecond'
	WHERE holder = ANY($2::text[]) AND starts_with(key, $3)
	    AND released_at IS NULL AND expires_at > statement_timestamp()
	RETURNING key, holder, token, acquired_at, expires_at
;;
UPDATE leases SET expires_at = statement_timestamp() + $1 * interval '1 millisecond'
	WHERE key = $2 AND holder = $3 AND token = $4
	    AND released_at IS NULL AND expires_at > statement_timestamp()
	RETURNING acquired_at, expires_at
;;
UPDATE leases SET released_at = statement_timestamp(), expires_at = least(expires_at, statement_timestamp())
	WHERE key = $1 AND holder = $2 AND token = $3 AND released_at IS NULL
	RETURNING token
;;
UPDATE rollup_progress SET rolled_through = $1 WHERE step_seconds = $2
;;
UPDATE status_spans SET ended_at = $1 WHERE tenant_id = $2 AND ended_at IS NULL
;;
UPDATE status_spans SET ended_at = $1 WHERE tenant_id = $2 AND ended_at IS NULL
	  AND target_id = $3
;;
UPDATE status_spans SET ended_at = 'epoch'::timestamptz + $1 * interval '1 microsecond'
	WHERE tenant_id = $2 AND target_id = $3 AND ended_at IS NULL
;;
UPDATE status_spans SET ended_at = NULL
	WHERE tenant_id = $1 AND target_id = $2 AND state = 'up'
	  AND ended_at = 'epoch'::timestamptz + $3 * interval '1 microsecond'
	RETURNING 1
;;
UPDATE tenants SET status_slug = $1, status_title = $2 WHERE id = $3
;;
WITH c AS (
	    INSERT INTO checks (tenant_id, id, name, type, target, interval_seconds, timeout_ms, retries, run_on,
	                        options, paused, push_token, public, public_target)
	    VALUES ($1, $2, $3, $4, $5,
	            $6, $7, $8,
	            $9::jsonb, $10::jsonb,
	            $11, $12, $13,
	            $14)
	    RETURNING *
	)
	SELECT c.id, c.name, c.type, c.target, c.interval_seconds, c.timeout_ms, c.retries, c.run_on::text, c.options::text,
	       c.paused, c.public, c.public_target, c.push_token, c.created_at, c.updated_at, recent.oks, recent.last_ts
	FROM c LEFT JOIN LATERAL (
	    SELECT array_agg(r.ok ORDER BY r.slot_at DESC) AS oks, max(r.ts) AS last_ts
	    FROM (SELECT slot_at, max(ts) AS ts,
	                 count(*) FILTER (WHERE NOT ok) < coalesce((c.run_on->>'quorum')::int, 1) AS ok
	          FROM check_results
	          WHERE tenant_id = c.tenant_id AND check_id = c.id
	          GROUP BY slot_at
	          ORDER BY slot_at DESC LIMIT c.retries + 1) r
	) recent ON true
;;
WITH c AS (
	    SELECT tenant_id, id, interval_seconds, paused FROM checks WHERE push_token = $1 AND type = 'push'
	), stored AS (
	    INSERT INTO check_results AS r (tenant_id, check_id, slot_at, ts, runner, token, ok, latency_ms, error)
	    SELECT tenant_id, id,
	           to_timestamp(floor(extract(epoch FROM statement_timestamp()) / interval_seconds) * interval_seconds),
	           statement_timestamp(), 'push', 0, $2, $3, $4
	    FROM c WHERE NOT paused
	    ON CONFLICT (tenant_id, check_id, slot_at, member) DO UPDATE
	        SET ts = EXCLUDED.ts, ok = EXCLUDED.ok, latency_ms = EXCLUDED.latency_ms, error = EXCLUDED.error
	    RETURNING slot_at
	)
	SELECT c.tenant_id, c.id, c.paused, (SELECT slot_at FROM stored) FROM c
;;
WITH c AS (
	    UPDATE checks SET name = $1, type = $2, target = $3,
	        interval_seconds = $4, timeout_ms = $5,
	        retries = $6, run_on = $7::jsonb,
	        options = $8::jsonb, paused = coalesce($9, paused),
	        public = coalesce($10, public),
	        public_target = coalesce($11, public_target),
	        push_token = CASE WHEN $12::text IS NULL THEN NULL ELSE coalesce(push_token, $13) END,
	        updated_at = now()
	    WHERE tenant_id = $14 AND id = $15
	    RETURNING *
	)
	SELECT c.id, c.name, c.type, c.target, c.interval_seconds, c.timeout_ms, c.retries, c.run_on::text, c.options::text,
	       c.paused, c.public, c.public_target, c.push_token, c.created_at, c.updated_at, recent.oks, recent.last_ts
	FROM c LEFT JOIN LATERAL (
	    SELECT array_agg(r.ok ORDER BY r.slot_at DESC) AS oks, max(r.ts) AS last_ts
	    FROM (SELECT slot_at, max(ts) AS ts,
	                 count(*) FILTER (WHERE NOT ok) < coalesce((c.run_on->>'quorum')::int, 1) AS ok
	          FROM check_results
	          WHERE tenant_id = c.tenant_id AND check_id = c.id
	          GROUP BY slot_at
	          ORDER BY slot_at DESC LIMIT c.retries + 1) r
	) recent ON true
;;
WITH c AS (
	    UPDATE checks SET paused = $1, updated_at = CASE WHEN paused = $2 THEN updated_at ELSE now() END
	    WHERE tenant_id = $3 AND id = $4
	    RETURNING *
	)
	SELECT c.id, c.name, c.type, c.target, c.interval_seconds, c.timeout_ms, c.retries, c.run_on::text, c.options::text,
	       c.paused, c.public, c.public_target, c.push_token, c.created_at, c.updated_at, recent.oks, recent.last_ts
	FROM c LEFT JOIN LATERAL (
	    SELECT array_agg(r.ok ORDER BY r.slot_at DESC) AS oks, max(r.ts) AS last_ts
	    FROM (SELECT slot_at, max(ts) AS ts,
	                 count(*) FILTER (WHERE NOT ok) < coalesce((c.run_on->>'quorum')::int, 1) AS ok
	          FROM check_results
	          WHERE tenant_id = c.tenant_id AND check_id = c.id
	          GROUP BY slot_at
	          ORDER BY slot_at DESC LIMIT c.retries + 1) r
	) recent ON true
;;
WITH c AS (
	    UPDATE checks SET public = $1, public_target = $2, updated_at = now()
	    WHERE tenant_id = $3 AND id = $4
	    RETURNING *
	)
	SELECT c.id, c.name, c.type, c.target, c.interval_seconds, c.timeout_ms, c.retries, c.run_on::text, c.options::text,
	       c.paused, c.public, c.public_target, c.push_token, c.created_at, c.updated_at, recent.oks, recent.last_ts
	FROM c LEFT JOIN LATERAL (
	    SELECT array_agg(r.ok ORDER BY r.slot_at DESC) AS oks, max(r.ts) AS last_ts
	    FROM (SELECT slot_at, max(ts) AS ts,
	                 count(*) FILTER (WHERE NOT ok) < coalesce((c.run_on->>'quorum')::int, 1) AS ok
	          FROM check_results
	          WHERE tenant_id = c.tenant_id AND check_id = c.id
	          GROUP BY slot_at
	          ORDER BY slot_at DESC LIMIT c.retries + 1) r
	) recent ON true
;;
WITH c AS (SELECT * FROM checks WHERE tenant_id = $1 AND id = $2)
	SELECT c.id, c.name, c.type, c.target, c.interval_seconds, c.timeout_ms, c.retries, c.run_on::text, c.options::text,
	       c.paused, c.public, c.public_target, c.push_token, c.created_at, c.updated_at, recent.oks, recent.last_ts
	FROM c LEFT JOIN LATERAL (
	    SELECT array_agg(r.ok ORDER BY r.slot_at DESC) AS oks, max(r.ts) AS last_ts
	    FROM (SELECT slot_at, max(ts) AS ts,
	                 count(*) FILTER (WHERE NOT ok) < coalesce((c.run_on->>'quorum')::int, 1) AS ok
	          FROM check_results
	          WHERE tenant_id = c.tenant_id AND check_id = c.id
	          GROUP BY slot_at
	          ORDER BY slot_at DESC LIMIT c.retries + 1) r
	) recent ON true
;;
WITH c AS (SELECT * FROM checks WHERE tenant_id = $1)
	SELECT c.id, c.name, c.type, c.target, c.interval_seconds, c.timeout_ms, c.retries, c.run_on::text, c.options::text,
	       c.paused, c.public, c.public_target, c.push_token, c.created_at, c.updated_at, recent.oks, recent.last_ts
	FROM c LEFT JOIN LATERAL (
	    SELECT array_agg(r.ok ORDER BY r.slot_at DESC) AS oks, max(r.ts) AS last_ts
	    FROM (SELECT slot_at, max(ts) AS ts,
	                 count(*) FILTER (WHERE NOT ok) < coalesce((c.run_on->>'quorum')::int, 1) AS ok
	          FROM check_results
	          WHERE tenant_id = c.tenant_id AND check_id = c.id
	          GROUP BY slot_at
	          ORDER BY slot_at DESC LIMIT c.retries + 1) r
	) recent ON true ORDER BY c.name, c.id
;;
WITH due AS (
	    SELECT c.tenant_id, c.id, c.interval_seconds + g.grace AS allowed, d.slot_at
	    FROM checks c
	    CROSS JOIN LATERAL (SELECT coalesce((c.options->>'grace_seconds')::int, 0) AS grace) g
	    CROSS JOIN LATERAL (
	        SELECT to_timestamp(floor((extract(epoch FROM statement_timestamp()) - c.interval_seconds - g.grace)
	                                  / c.interval_seconds) * c.interval_seconds) AS slot_at
	    ) d
	    WHERE c.type = 'push' AND NOT c.paused AND d.slot_at >= c.updated_at
	)
	INSERT INTO check_results (tenant_id, check_id, slot_at, ts, runner, token, ok, error)
	SELECT due.tenant_id, due.id, due.slot_at, statement_timestamp(), 'push', 0, false,
	       'no push call within ' || due.allowed || ' s (the interval plus the grace period)'
	FROM due
	WHERE NOT EXISTS (
	    SELECT 1 FROM check_results r
	    WHERE r.tenant_id = due.tenant_id AND r.check_id = due.id AND r.slot_at >= due.slot_at
	      AND r.ts >= due.slot_at AND r.ts < due.slot_at + due.allowed * interval '1 second'
	)
	ON CONFLICT (tenant_id, check_id, slot_at, member) DO NOTHING
	RETURNING tenant_id, check_id
;;
WITH fenced AS (
	    SELECT u.check_id, s.slot_at, s.member, u.ts_ms, u.token, u.ok, u.latency, u.error, u.status,
	           u.not_after_ms, u.figures, s.runner
	    FROM unnest($1::uuid[], $2::int8[], $3::int8[], $4::int8[], $5::bool[],
	                $6::float8[], $7::text[], $8::int4[], $9::int8[],
	                $10::text[])
	         AS u(check_id, slot_ms, ts_ms, token, ok, latency, error, status, not_after_ms, figures)
	    JOIN check_slots s ON s.tenant_id = $11 AND s.check_id = u.check_id
	        AND s.slot_at = to_timestamp(u.slot_ms / 1000.0) AND s.token = u.token
	        AND s.agent_id IS NOT DISTINCT FROM $12::uuid
	    FOR SHARE OF s
	)
	INSERT INTO check_results (tenant_id, check_id, slot_at, member, ts, agent_id, runner, token, ok, latency_ms,
	                           error, http_status, cert_not_after, figures)
	SELECT $13, check_id, slot_at, member, to_timestamp(ts_ms / 1000.0), $14::uuid, runner, token, ok,
	       CASE WHEN latency < 0 THEN NULL ELSE latency END, error, nullif(status, 0),
	       CASE WHEN not_after_ms = 0 THEN NULL ELSE to_timestamp(not_after_ms / 1000.0) END, figures::jsonb
	FROM fenced
	ON CONFLICT (tenant_id, check_id, slot_at, member) DO NOTHING
	RETURNING check_id
;;
WITH gone AS (
	    DELETE FROM check_slots WHERE slot_at < statement_timestamp() - $1 * interval '1 second' RETURNING 1
	)
	SELECT count(*) FROM gone
;;
WITH gone_leases AS (
	    DELETE FROM leases
	    WHERE expires_at <= statement_timestamp() - $1 * interval '1 millisecond'
	    RETURNING 1
	), gone_counters AS (
	    DELETE FROM lease_counters WHERE expires_at <= statement_timestamp() RETURNING 1
	)
	SELECT (SELECT count(*) FROM gone_leases) + (SELECT count(*) FROM gone_counters)
;;
WITH open AS (
	    SELECT state, started_at FROM status_spans
	    WHERE tenant_id = $1 AND target_id = $2 AND ended_at IS NULL),
	opened AS (
	    INSERT INTO status_spans (tenant_id, target_id, state, started_at, cause)
	    SELECT $3, $4, 'up', 'epoch'::timestamptz + $5 * interval '1 microsecond', ''
	    WHERE NOT EXISTS (SELECT 1 FROM open)
	    ON CONFLICT (tenant_id, target_id, started_at) DO NOTHING)
	SELECT state, (extract(epoch FROM started_at) * 1000000)::bigint FROM open
;;
