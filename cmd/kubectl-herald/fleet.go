package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/heraldiot/herald/internal/view"
)

func newFleetCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "fleet NAME",
		Aliases: []string{"devicefleet"},
		Short:   "Show a fleet: devices online and offline, firmware versions, models, conditions",
		Example: "  kubectl herald fleet sensors -n factory-7",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := a.connect()
			if err != nil {
				return err
			}
			f, err := k.getFleet(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, err = io.WriteString(a.out, view.RenderFleet(f, a.now()))
			return err
		},
	}
}
