package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/arubug/arubug/internal/clickhouse"
)

func migrateCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig("migrate", clusterFlagAlias(args), getenv, stderr)
	if err != nil {
		return err
	}
	if err := cfg.CheckClickHouseCluster(); err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	dsn, stop, err := clickHouseSource(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stop()
	db, err := clickhouse.Open(ctx, clickhouse.Options{DSN: dsn, Logger: log, CreateDatabase: true, Cluster: cfg.ClickHouseCluster})
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := db.MigrateEveryNode(ctx)
	if err != nil {
		return err
	}
	where := ""
	if cfg.ClickHouseCluster != "" {
		where = " on every node of cluster " + cfg.ClickHouseCluster
	}
	fmt.Fprintf(stdout, "migrations applied: %d (schema at version %d%s)\n", n, clickhouse.Migrations[len(clickhouse.Migrations)-1].Version, where)
	return nil
}

// clusterFlagAlias lets `arubug migrate --cluster NAME` stand for
// --clickhouse-cluster, the name the setting has everywhere else.
func clusterFlagAlias(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		for _, p := range []string{"--cluster", "-cluster"} {
			if a == p || strings.HasPrefix(a, p+"=") {
				a = "--clickhouse-cluster" + strings.TrimPrefix(a, p)
				break
			}
		}
		out[i] = a
	}
	return out
}
