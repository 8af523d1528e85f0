// Module pause is the cluster tier's pod sandbox binary, a module of its own so
// that Herald's module does not build it. hack/cluster/image.sh packs it.
module github.com/heraldiot/herald/hack/cluster/pause

go 1.26.0
