// Package api holds the conman wire protocol: api.proto and the Go code
// generated from it. Field numbers are the contract with every client; the
// generated file is committed and regenerated with `go generate ./api`.
//
// Nothing in this package is written by hand except this file.
package api

//go:generate sh -c "protoc --plugin=protoc-gen-go=$(go tool -n protoc-gen-go) --go_out=. --go_opt=paths=source_relative api.proto"
