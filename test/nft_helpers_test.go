package test

import "github.com/google/nftables"

func nftTableExists() bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	_, err = c.ListTableOfFamily("soulbox", nftables.TableFamilyINet)
	return err == nil
}
