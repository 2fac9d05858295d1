package main

import (
	"context"
	"fmt"
	"io"

	"github.com/arubug/arubug/internal/clickhouse"
)

func migrateCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig("migrate", args, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	dsn, stop, err := clickHouseSource(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stop()
	db, err := clickhouse.Open(ctx, clickhouse.Options{DSN: dsn, Logger: log, CreateDatabase: true})
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "migrations applied: %d (schema at version %d)\n", n, clickhouse.Migrations[len(clickhouse.Migrations)-1].Version)
	return nil
}
