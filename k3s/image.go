package k3s

import "strings"

// Image is the stock image reference for a K3s version: the tag derived from the version
// as rancher/k3s tags it (v1.31.4+k3s1 -> v1.31.4-k3s1, '+' being invalid in tags),
// unless the image already carries a tag or a digest.
func Image(image, version string) string {
	if HasTagOrDigest(image) || version == "" {
		return image
	}
	return image + ":" + strings.ReplaceAll(version, "+", "-")
}

// HasTagOrDigest reports a tag or digest on an image reference; a ':' before the last
// '/' is a registry port.
func HasTagOrDigest(image string) bool {
	if strings.Contains(image, "@") {
		return true
	}
	return strings.LastIndexByte(image, ':') > strings.LastIndexByte(image, '/')
}
